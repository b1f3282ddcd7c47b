"""EdgeSplit's round-time model (thesis Eqs. 4.1-4.5) built from a measured layer profile.

Units: seconds, bytes and bytes per second throughout; Mbps appears only at the edges
(`mbps_to_bytes_per_s`). Split points are 1-based layer indices as in the thesis: split j
keeps layers 1..j on the device and j+1..L on the server; j = L is fully local training,
where only the parameters travel (no activations, no server compute).

For device i at split j, with b batches a round:
    A_ij = b (T^f_ij + T^b_ij + S^f_j + S^b_j)   device layers 1..j, server layers j+1..L
    C_j  = 2 (b O_j + P_j)                        activations up + gradients down, and the
                                                  device model up + down once a round
    T^r_i = A_ij + C_j / B_i
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgebus.research.edgesplit_profile import EdgeSplitError, ModelProfile

BYTES_PER_MBPS = 1e6 / 8


def mbps_to_bytes_per_s(mbps: float) -> float:
    return mbps * BYTES_PER_MBPS


@dataclass(frozen=True)
class DeviceClass:
    """A kind of machine, by how many times longer than one thread of the profiling CPU it
    takes on the same layer (< 1 is faster)."""

    name: str
    compute_factor: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.compute_factor) or self.compute_factor <= 0:
            raise EdgeSplitError(
                f"device class {self.name!r} compute_factor: expected > 0, "
                f"got {self.compute_factor}"
            )


# Assumed, not measured (see docs/scheduling_edgesplit.md): relative to one thread of the
# AMD EPYC (Zen 4, AVX-512) the profile was taken on.
DEVICE_CLASSES: dict[str, DeviceClass] = {
    "rpi4": DeviceClass("rpi4", 10.0),  # 4x Cortex-A72 @ 1.5 GHz, NEON only
    "jetson_nano": DeviceClass("jetson_nano", 4.0),  # 128-core Maxwell GPU, small batches
    "laptop": DeviceClass("laptop", 1.0),  # a laptop core is about this core
}
SERVER_CLASS = DeviceClass("server", 0.1)  # a GPU server: small layers do not fill it


def device_class(name: str) -> DeviceClass:
    if name not in DEVICE_CLASSES:
        raise EdgeSplitError(f"device class {name!r}: expected one of {sorted(DEVICE_CLASSES)}")
    return DEVICE_CLASSES[name]


@dataclass(frozen=True)
class SplitProblem:
    """P1's data: `compute_s[i, j-1]` is A_ij, `transfer_bytes[j-1]` is C_j."""

    model: str
    devices: tuple[str, ...]
    compute_s: np.ndarray
    transfer_bytes: np.ndarray
    total_bandwidth: float  # bytes per second shared by all devices (sum B_i <= B)

    def __post_init__(self) -> None:
        if not self.devices:
            raise EdgeSplitError("split problem devices: expected at least one device, got none")
        depth = self.transfer_bytes.shape[0] if self.transfer_bytes.ndim == 1 else 0
        if depth < 1 or self.compute_s.shape != (len(self.devices), depth):
            raise EdgeSplitError(
                f"split problem compute_s {self.compute_s.shape}: expected (devices, layers) = "
                f"({len(self.devices)}, {depth}) matching transfer_bytes"
            )
        for label, values in (
            ("compute_s", self.compute_s),
            ("transfer_bytes", self.transfer_bytes),
        ):
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise EdgeSplitError(f"split problem {label}: expected finite values >= 0")
        if not math.isfinite(self.total_bandwidth) or self.total_bandwidth <= 0:
            raise EdgeSplitError(
                f"split problem total_bandwidth: expected > 0 bytes/s, got {self.total_bandwidth}"
            )

    @property
    def size(self) -> int:
        return len(self.devices)

    @property
    def depth(self) -> int:
        return int(self.transfer_bytes.shape[0])

    def check_splits(self, splits: Sequence[int]) -> np.ndarray:
        """The 0-based column of each device's split point, after checking the 1-based input."""
        columns = np.asarray(splits, dtype=int)
        if columns.shape != (self.size,):
            raise EdgeSplitError(f"splits: expected {self.size} split points, got {len(splits)}")
        if np.any(columns < 1) or np.any(columns > self.depth):
            raise EdgeSplitError(f"splits {list(splits)}: expected layer indices 1..{self.depth}")
        return columns - 1


def build_problem(
    profile: ModelProfile,
    devices: Sequence[DeviceClass | str],
    total_mbps: float,
    batches: int,
    server: DeviceClass = SERVER_CLASS,
) -> SplitProblem:
    """P1 for `devices` sharing `total_mbps`, each training `batches` batches a round."""
    if not devices:
        raise EdgeSplitError("devices: expected at least one device, got none")
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise EdgeSplitError(f"batches: expected an integer >= 1 per round, got {batches!r}")
    if not math.isfinite(total_mbps) or total_mbps <= 0:
        raise EdgeSplitError(f"total bandwidth: expected > 0 Mbps, got {total_mbps}")
    classes = [device_class(d) if isinstance(d, str) else d for d in devices]
    device_s = np.cumsum(profile.forward_s() + profile.backward_s())  # layers 1..j
    server_s = device_s[-1] - device_s  # layers j+1..L
    factors = np.array([c.compute_factor for c in classes])
    compute_s = batches * (factors[:, None] * device_s[None, :] + server.compute_factor * server_s)
    activations = profile.output_bytes().copy()
    activations[-1] = 0.0  # fully local: the device computes its own loss, nothing to send
    transfer = 2.0 * (batches * activations + np.cumsum(profile.param_bytes()))
    return SplitProblem(
        model=profile.name,
        devices=tuple(c.name for c in classes),
        compute_s=compute_s,
        transfer_bytes=transfer,
        total_bandwidth=mbps_to_bytes_per_s(total_mbps),
    )


def round_times(
    problem: SplitProblem, splits: Sequence[int], bandwidth: Sequence[float] | np.ndarray
) -> np.ndarray:
    """T^r_i for every device (Eq. 4.4), in seconds; infinite where data must move at 0 B/s."""
    columns = problem.check_splits(splits)
    rates = np.asarray(bandwidth, dtype=float)
    if rates.shape != (problem.size,) or not np.all(np.isfinite(rates)) or np.any(rates < 0):
        raise EdgeSplitError(f"bandwidth: expected {problem.size} finite rates >= 0 bytes/s")
    if rates.sum() > problem.total_bandwidth * (1 + 1e-9):
        raise EdgeSplitError(
            f"bandwidth: sum {rates.sum():.6g} B/s exceeds the total {problem.total_bandwidth:.6g}"
        )
    rows = np.arange(problem.size)
    transfer = problem.transfer_bytes[columns]
    with np.errstate(divide="ignore", invalid="ignore"):
        transfer_s = np.where(transfer > 0, transfer / rates, 0.0)
    return problem.compute_s[rows, columns] + transfer_s
