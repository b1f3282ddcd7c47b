"""The DCEI problem (thesis Ch. 5): camera streams, edge devices, placements and Eq. 5.2.

Units throughout: loads in work units per frame (the experiment uses GFLOP), compute in work
units per second, memory in MB, intermediate data in bytes, rates in bytes per second and
times in seconds.

Memory model: a device that runs detection for any stream holds one detection model, and a
device that runs re-ID for any stream holds one re-ID model; every stream placed there shares
that model. So a device needs `detect_memory` and/or `reid_memory`, never more, and a stream
can always join a device that already holds the model it needs ("reuse of deployed models").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class DceiInputError(ValueError):
    """A DCEI problem or placement that is malformed."""


class DceiInfeasibleError(DceiInputError):
    """A well-formed DCEI problem that no placement can satisfy (memory or reachability)."""


def _require_finite(value: float, what: str, *, positive: bool) -> None:
    bad = not math.isfinite(value) or value < 0 or (positive and value == 0)
    if bad:
        expected = "a finite number > 0" if positive else "a finite number >= 0"
        raise DceiInputError(f"{what} is {value!r}; expected {expected}")


@dataclass(frozen=True)
class Device:
    name: str
    compute: float  # PS_i, work units per second
    memory: float  # R^i_max, memory available for models (MB)

    def __post_init__(self) -> None:
        if not self.name:
            raise DceiInputError("device name is empty; expected a non-empty string")
        _require_finite(self.compute, f"device {self.name!r} compute", positive=True)
        _require_finite(self.memory, f"device {self.name!r} memory", positive=False)


@dataclass(frozen=True)
class Stream:
    name: str
    detect_load: float  # CL_{1,k}, work units per frame
    reid_load: float  # CL_{2,k}, work units per frame
    intermediate_bytes: float  # D^k_{1,2}, bytes from detection to re-ID per frame

    def __post_init__(self) -> None:
        if not self.name:
            raise DceiInputError("stream name is empty; expected a non-empty string")
        _require_finite(self.detect_load, f"stream {self.name!r} detect_load", positive=False)
        _require_finite(self.reid_load, f"stream {self.name!r} reid_load", positive=False)
        _require_finite(
            self.intermediate_bytes, f"stream {self.name!r} intermediate_bytes", positive=False
        )

    @property
    def workload(self) -> float:
        """Work per frame, detection plus re-ID: Algorithm 7 places heavy streams first."""
        return self.detect_load + self.reid_load


def _frozen_matrix(values: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    matrix = np.array(values, dtype=float)
    if matrix.shape != shape:
        raise DceiInputError(f"{what} has shape {matrix.shape}; expected {shape}")
    if np.isnan(matrix).any():
        raise DceiInputError(f"{what} contains NaN; expected numbers")
    matrix.setflags(write=False)
    return matrix


@dataclass(frozen=True, eq=False)
class DceiProblem:
    devices: tuple[Device, ...]
    streams: tuple[Stream, ...]
    upload_s: np.ndarray  # T_ik, shape (M, K), seconds per frame camera k -> device i (inf: no)
    rate: np.ndarray  # R_ij, shape (M, M), bytes/s between devices (diagonal ignored)
    detect_memory: float  # MB one deployed detection model takes
    reid_memory: float  # MB one deployed re-ID model takes
    # Per-device, per-stream seconds, derived once so schedulers do not divide in inner loops.
    detect_s: np.ndarray = field(init=False, repr=False)  # (M, K)
    reid_s: np.ndarray = field(init=False, repr=False)  # (M, K)

    def __post_init__(self) -> None:
        devices, streams = tuple(self.devices), tuple(self.streams)
        if not devices:
            raise DceiInputError("devices is empty; expected at least one Device")
        if not streams:
            raise DceiInputError("streams is empty; expected at least one Stream")
        for name, items in (("device", devices), ("stream", streams)):
            names = [item.name for item in items]
            if len(set(names)) != len(names):
                raise DceiInputError(f"{name} names repeat in {names}; expected unique names")
        object.__setattr__(self, "devices", devices)
        object.__setattr__(self, "streams", streams)
        m, k = len(devices), len(streams)
        upload = _frozen_matrix(self.upload_s, (m, k), "upload_s")
        if (upload < 0).any():
            raise DceiInputError("upload_s has negative entries; expected seconds >= 0 or inf")
        rate = _frozen_matrix(self.rate, (m, m), "rate")
        off_diagonal = rate[~np.eye(m, dtype=bool)]
        if (off_diagonal <= 0).any():
            raise DceiInputError("rate has entries <= 0 between devices; expected bytes/s > 0")
        _require_finite(self.detect_memory, "detect_memory", positive=False)
        _require_finite(self.reid_memory, "reid_memory", positive=False)
        for column, stream in enumerate(streams):
            if not np.isfinite(upload[:, column]).any():
                raise DceiInfeasibleError(
                    f"stream {stream.name!r} reaches no device (upload_s column {column} is all "
                    "inf); expected at least one finite upload time"
                )
        object.__setattr__(self, "upload_s", upload)
        object.__setattr__(self, "rate", rate)
        compute = np.array([device.compute for device in devices])
        detect = np.outer(1.0 / compute, [stream.detect_load for stream in streams])
        reid = np.outer(1.0 / compute, [stream.reid_load for stream in streams])
        for matrix in (detect, reid):
            matrix.setflags(write=False)
        object.__setattr__(self, "detect_s", detect)
        object.__setattr__(self, "reid_s", reid)

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def num_streams(self) -> int:
        return len(self.streams)

    def transfer_s(self, source: int, target: int, stream: int) -> float:
        """D^k_{1,2} / R_ij, or 0 when detection and re-ID share the device."""
        if source == target:
            return 0.0
        return self.streams[stream].intermediate_bytes / float(self.rate[source, target])

    def workload_order(self) -> list[int]:
        """Stream indices by workload, heaviest first (ties: lower index first)."""
        return sorted(range(self.num_streams), key=lambda k: (-self.streams[k].workload, k))


@dataclass(frozen=True)
class DceiPlacement:
    detect: tuple[int, ...]  # device index per stream (x)
    reid: tuple[int, ...]  # device index per stream (y)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detect", tuple(int(i) for i in self.detect))
        object.__setattr__(self, "reid", tuple(int(j) for j in self.reid))
        if len(self.detect) != len(self.reid):
            raise DceiInputError(
                f"placement has {len(self.detect)} detect and {len(self.reid)} reid entries; "
                "expected one of each per stream"
            )

    @property
    def offloaded(self) -> tuple[bool, ...]:
        return tuple(i != j for i, j in zip(self.detect, self.reid, strict=True))


def memory_use(problem: DceiProblem, placement: DceiPlacement) -> np.ndarray:
    """MB of models each device holds under the placement (one shared model per kind)."""
    check_indices(problem, placement)
    used = np.zeros(problem.num_devices)
    used[sorted(set(placement.detect))] += problem.detect_memory
    used[sorted(set(placement.reid))] += problem.reid_memory
    return used


def check_indices(problem: DceiProblem, placement: DceiPlacement) -> None:
    """Raise unless the placement names a device for every stream, reachable from its camera."""
    if len(placement.detect) != problem.num_streams:
        raise DceiInputError(
            f"placement covers {len(placement.detect)} streams; expected {problem.num_streams}"
        )
    for indices, what in ((placement.detect, "detect"), (placement.reid, "reid")):
        for stream, device in enumerate(indices):
            if not 0 <= device < problem.num_devices:
                raise DceiInputError(
                    f"placement.{what}[{stream}] is {device}; expected a device index in "
                    f"0..{problem.num_devices - 1}"
                )
    for stream, device in enumerate(placement.detect):
        if not math.isfinite(problem.upload_s[device, stream]):
            raise DceiInputError(
                f"placement maps stream {problem.streams[stream].name!r} to device "
                f"{problem.devices[device].name!r}, which its camera cannot reach"
            )


def check_placement(problem: DceiProblem, placement: DceiPlacement) -> None:
    """Raise unless the placement is complete, reachable and within every device's memory."""
    used = memory_use(problem, placement)
    for device, need in zip(problem.devices, used, strict=True):
        if need > device.memory:
            raise DceiInfeasibleError(
                f"placement needs {need:g} MB on device {device.name!r}; it has {device.memory:g}"
            )


def stream_latencies(problem: DceiProblem, placement: DceiPlacement) -> np.ndarray:
    """Eq. 5.2 per stream: upload + detection + re-ID, plus the transfer when i != j.

    Each stream is charged as if it had its devices to itself; `dcei_round` adds the
    queueing when streams share a device."""
    check_indices(problem, placement)
    return np.array(
        [
            problem.upload_s[i, k]
            + problem.detect_s[i, k]
            + problem.reid_s[j, k]
            + problem.transfer_s(i, j, k)
            for k, (i, j) in enumerate(zip(placement.detect, placement.reid, strict=True))
        ]
    )
