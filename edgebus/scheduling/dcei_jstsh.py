"""JSTSH (thesis Algorithm 7) and the thesis' three baselines, made load-aware.

Algorithm 7 as printed scores a device by one stream's own Eq. 5.2 terms, so every stream
would pick the same fastest device. Here each greedy step scores a candidate by the round it
produces with the streams placed so far (`dcei_round`, queueing included): first the round's
makespan (what sets the throughput we report), then its total latency (Eq. 5.2's objective
once devices are shared). Streams are placed heaviest first (Algorithm 7's sort); ties go to
keeping re-ID local, then to the lower device index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgebus.scheduling.dcei_memory import (
    MemoryLedger,
    require_local_feasible,
    require_offloading_feasible,
)
from edgebus.scheduling.dcei_model import (
    DceiInfeasibleError,
    DceiPlacement,
    DceiProblem,
    check_indices,
)
from edgebus.scheduling.dcei_round import simulate_partial

RoundCost = tuple[float, float]  # (makespan s, total latency s), compared in that order

# Relative slack under which two costs count as equal (float noise, not a preference).
_TIE = 1e-9


def round_cost(
    problem: DceiProblem, detect: Sequence[int | None], reid: Sequence[int | None]
) -> RoundCost:
    """The round's (makespan, total latency) for a possibly partial placement."""
    completion = simulate_partial(problem, detect, reid)[1]
    return float(completion.max()), float(completion.sum())


def cost_below(challenger: RoundCost, incumbent: RoundCost) -> bool:
    """Lexicographic `challenger < incumbent`, with float-noise ties treated as equal."""
    for new, old in zip(challenger, incumbent, strict=True):
        slack = _TIE * max(1.0, abs(old))
        if new < old - slack:
            return True
        if new > old + slack:
            return False
    return False


def _argmin(candidates: Sequence[int], cost: Callable[[int], RoundCost]) -> int:
    """The first candidate with the lowest cost; candidates come in order of preference."""
    best, best_cost = candidates[0], cost(candidates[0])
    for candidate in candidates[1:]:
        value = cost(candidate)
        if cost_below(value, best_cost):
            best, best_cost = candidate, value
    return best


def _reachable(problem: DceiProblem, stream: int) -> list[int]:
    return [i for i in range(problem.num_devices) if np.isfinite(problem.upload_s[i, stream])]


def _detect_candidates(ledger: MemoryLedger, stream: int, pending: Sequence[int]) -> list[int]:
    """Devices that can take the stream's detection without stranding the pending streams."""
    out = []
    for device in _reachable(ledger.problem, stream):
        if not ledger.can_detect(device):
            continue
        if not ledger.holds_detect[device]:
            trial = ledger.copy()
            trial.deploy(device, detect=True)
            if not trial.completable_with_offloading(pending):
                continue
        out.append(device)
    return out


def map_detections(problem: DceiProblem) -> tuple[int, ...]:
    """Algorithm 7, Stage 1: each stream's detection goes where the round of detections placed
    so far ends soonest, among devices with memory to spare."""
    require_offloading_feasible(problem)
    ledger = MemoryLedger(problem)
    order = problem.workload_order()
    detect: list[int | None] = [None] * problem.num_streams
    no_reid: list[int | None] = [None] * problem.num_streams
    for position, stream in enumerate(order):
        candidates = _detect_candidates(ledger, stream, order[position + 1 :])

        def cost(device: int, stream: int = stream) -> RoundCost:
            detect[stream] = device
            return round_cost(problem, detect, no_reid)

        chosen = _argmin(candidates, cost)
        detect[stream] = chosen
        ledger.deploy(chosen, detect=True)
    return tuple(int(device) for device in detect if device is not None)


def _ledger_with_detections(problem: DceiProblem, detect: Sequence[int]) -> MemoryLedger:
    check_indices(problem, DceiPlacement(detect=tuple(detect), reid=tuple(detect)))
    ledger = MemoryLedger(problem)
    for device in sorted(set(detect)):
        ledger.deploy(device, detect=True)
    if not any(ledger.can_reid(device) for device in range(problem.num_devices)):
        raise DceiInfeasibleError(
            f"after the detection models no device has {problem.reid_memory:g} MB for a re-ID "
            "model; expected a mapping that leaves room for one"
        )
    return ledger


def offload_reid(problem: DceiProblem, detect: Sequence[int]) -> DceiPlacement:
    """Algorithm 7, Stage 2, for a given detection mapping: each stream's re-ID goes where the
    round is best, transfer D/R_ij included. A device may take it if it already holds a re-ID
    model (reuse, Eq. 5.9) or has memory for a new one."""
    ledger = _ledger_with_detections(problem, detect)
    reid: list[int | None] = [None] * problem.num_streams
    for stream in problem.workload_order():
        local = detect[stream]
        others = [j for j in range(problem.num_devices) if j != local]
        candidates = [j for j in [local, *others] if ledger.can_reid(j)]

        def cost(device: int, stream: int = stream) -> RoundCost:
            reid[stream] = device
            return round_cost(problem, detect, reid)

        chosen = _argmin(candidates, cost)
        reid[stream] = chosen
        ledger.deploy(chosen, reid=True)
    return DceiPlacement(detect=tuple(detect), reid=tuple(int(j) for j in reid if j is not None))


def all_local_feasible(problem: DceiProblem) -> bool:
    try:
        require_local_feasible(problem)
    except DceiInfeasibleError:
        return False
    return True


def jstsh(problem: DceiProblem) -> DceiPlacement:
    """Algorithm 7: Stage 1 maps detections, Stage 2 places re-ID with model reuse.

    Stage 1 as printed ignores where re-ID will run, so at low bandwidth it can map streams to
    devices that must then ship every crop away. Stage 2 therefore also runs on the
    whole-stream mapping (WMNO's), and that mapping is also kept all local; the best round of
    the three wins. JSTSH is thus never worse than WMNO, and falls back to it when offloading
    does not pay, which is the thesis' low-bandwidth finding."""
    best = offload_reid(problem, map_detections(problem))
    if all_local_feasible(problem):
        mapping_only = wmno(problem)
        for candidate in (offload_reid(problem, mapping_only.detect), mapping_only):
            if cost_below(
                round_cost(problem, candidate.detect, candidate.reid),
                round_cost(problem, best.detect, best.reid),
            ):
                best = candidate
    return best


def wmno(problem: DceiProblem) -> DceiPlacement:
    """With mapping, no offloading: each stream, heaviest first, goes to the device where the
    round is best with detection and re-ID both there."""
    require_local_feasible(problem)
    ledger = MemoryLedger(problem)
    detect: list[int | None] = [None] * problem.num_streams
    for stream in problem.workload_order():
        candidates = [i for i in _reachable(problem, stream) if ledger.can_host_both(i)]

        def cost(device: int, stream: int = stream) -> RoundCost:
            detect[stream] = device
            return round_cost(problem, detect, detect)

        chosen = _argmin(candidates, cost)
        detect[stream] = chosen
        ledger.deploy(chosen, detect=True, reid=True)
    mapping = tuple(int(device) for device in detect if device is not None)
    return DceiPlacement(detect=mapping, reid=mapping)


def nmno(problem: DceiProblem, rng: np.random.Generator) -> DceiPlacement:
    """No mapping, no offloading: each stream on a random reachable device that can hold both
    models, re-ID local."""
    require_local_feasible(problem)
    both = problem.detect_memory + problem.reid_memory
    mapping = []
    for stream in range(problem.num_streams):
        candidates = [i for i in _reachable(problem, stream) if problem.devices[i].memory >= both]
        mapping.append(int(rng.choice(candidates)))
    return DceiPlacement(detect=tuple(mapping), reid=tuple(mapping))


def nmwo(problem: DceiProblem, rng: np.random.Generator) -> DceiPlacement:
    """No mapping, with offloading: random detection devices (within memory), then Stage 2."""
    require_offloading_feasible(problem)
    ledger = MemoryLedger(problem)
    detect = []
    for stream in range(problem.num_streams):
        candidates = _detect_candidates(ledger, stream, range(stream + 1, problem.num_streams))
        device = int(rng.choice(candidates))
        ledger.deploy(device, detect=True)
        detect.append(device)
    return offload_reid(problem, detect)
