"""Which models each device holds while a placement is built, and what still fits.

Schedulers ask the ledger which devices may take a stream's detection or re-ID. A device that
already holds the model takes another stream for free (model reuse, Eq. 5.9); otherwise the
model must fit in what is left of its memory. Offloading schedulers also ask whether the
streams not yet placed can still be completed, so that an early choice never strands a later
stream (for example by filling the last device that could hold a re-ID model).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgebus.scheduling.dcei_model import DceiInfeasibleError, DceiProblem


class MemoryLedger:
    def __init__(self, problem: DceiProblem) -> None:
        self.problem = problem
        self.free = np.array([device.memory for device in problem.devices], dtype=float)
        self.holds_detect = [False] * problem.num_devices
        self.holds_reid = [False] * problem.num_devices

    def copy(self) -> MemoryLedger:
        twin = MemoryLedger(self.problem)
        twin.free = self.free.copy()
        twin.holds_detect = list(self.holds_detect)
        twin.holds_reid = list(self.holds_reid)
        return twin

    def can_detect(self, device: int) -> bool:
        return self.holds_detect[device] or self.free[device] >= self.problem.detect_memory

    def can_reid(self, device: int) -> bool:
        return self.holds_reid[device] or self.free[device] >= self.problem.reid_memory

    def can_host_both(self, device: int) -> bool:
        return self.free[device] >= self._missing(device, detect=True, reid=True)

    def deploy(self, device: int, *, detect: bool = False, reid: bool = False) -> None:
        need = self._missing(device, detect=detect, reid=reid)
        if need > self.free[device]:
            name = self.problem.devices[device].name
            raise DceiInfeasibleError(
                f"device {name!r} has {self.free[device]:g} MB free; the models need {need:g}"
            )
        self.free[device] -= need
        self.holds_detect[device] |= detect
        self.holds_reid[device] |= reid

    def completable_with_offloading(self, pending: Iterable[int]) -> bool:
        """Whether every pending stream can still get a detection device and some device can
        still hold a re-ID model. Every pair of devices is linked, so one re-ID device can
        serve all streams: try each as that device and reserve its model first."""
        pending = list(pending)
        reachable = np.isfinite(self.problem.upload_s[:, pending])  # (M, pending)
        holds_detect = np.array(self.holds_detect)
        for host in range(self.problem.num_devices):
            if not self.can_reid(host):
                continue
            free = self.free.copy()
            if not self.holds_reid[host]:
                free[host] -= self.problem.reid_memory
            detector = holds_detect | (free >= self.problem.detect_memory)
            if (reachable & detector[:, None]).any(axis=0).all():
                return True
        return False

    def _missing(self, device: int, *, detect: bool, reid: bool) -> float:
        need = 0.0
        if detect and not self.holds_detect[device]:
            need += self.problem.detect_memory
        if reid and not self.holds_reid[device]:
            need += self.problem.reid_memory
        return need


def require_offloading_feasible(problem: DceiProblem) -> None:
    """Raise when no placement, offloading allowed, fits the devices' memory."""
    ledger = MemoryLedger(problem)
    if not any(ledger.can_reid(device) for device in range(problem.num_devices)):
        raise DceiInfeasibleError(
            f"no device has {problem.reid_memory:g} MB free for a re-ID model "
            f"(largest memory {ledger.free.max():g} MB)"
        )
    if not ledger.completable_with_offloading(range(problem.num_streams)):
        raise DceiInfeasibleError(
            f"no placement fits: some stream reaches no device with {problem.detect_memory:g} "
            f"MB for a detection model while another device holds the {problem.reid_memory:g} "
            "MB re-ID model"
        )


def require_local_feasible(problem: DceiProblem) -> None:
    """Raise when some stream reaches no device that can hold both models (all-local)."""
    both = problem.detect_memory + problem.reid_memory
    memory = np.array([device.memory for device in problem.devices])
    for stream_index, stream in enumerate(problem.streams):
        reachable = np.isfinite(problem.upload_s[:, stream_index])
        if not (reachable & (memory >= both)).any():
            raise DceiInfeasibleError(
                f"stream {stream.name!r} reaches no device with {both:g} MB for detection and "
                "re-ID together; expected one for an all-local placement"
            )
