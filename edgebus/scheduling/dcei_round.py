"""One tracking round with queueing: what Eq. 5.2 leaves out when streams share devices.

A round is one frame from every camera, all captured at t = 0. Cross-camera re-ID matches
the round's detections from every camera together, so the next round starts when the last
stream's re-ID features are ready: the round's makespan sets the system's frame rate, and
throughput is K frames per makespan. This is also how the thesis counts its motivating
example (Fig. 5.3: "random mapping takes 6 units").

Resources, each a first-come-first-served single server:
- each device runs one task (a detection or a re-ID) at a time, non-preemptively;
- each ordered device pair (i, j) carries one intermediate transfer at a time at R_ij;
- each camera's upload to its device runs on the camera's own link (T_ik, no sharing).
Ties in arrival time go to the lower stream index, then to the earlier stage.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgebus.scheduling.dcei_model import (
    DceiPlacement,
    DceiProblem,
    check_placement,
)

_DETECT, _TRANSFER, _REID = 0, 1, 2


@dataclass(frozen=True)
class RoundSchedule:
    detect_end_s: np.ndarray  # per stream, when its detection finished
    completion_s: np.ndarray  # per stream, when its re-ID finished (its latency with queueing)

    @property
    def makespan_s(self) -> float:
        return float(self.completion_s.max())

    @property
    def total_latency_s(self) -> float:
        return float(self.completion_s.sum())

    def throughput_fps(self) -> float:
        """Frames per second over all cameras: K frames every makespan."""
        return len(self.completion_s) / self.makespan_s if self.makespan_s > 0 else np.inf


def simulate_round(problem: DceiProblem, placement: DceiPlacement) -> RoundSchedule:
    """Queue one frame per camera through the placement; raises on an invalid placement."""
    check_placement(problem, placement)
    detect_end, completion = simulate_partial(problem, placement.detect, placement.reid)
    return RoundSchedule(detect_end_s=detect_end, completion_s=completion)


def round_throughput(problem: DceiProblem, placement: DceiPlacement) -> float:
    return simulate_round(problem, placement).throughput_fps()


def simulate_partial(
    problem: DceiProblem, detect: Sequence[int | None], reid: Sequence[int | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The round for a placement under construction, without validation (schedulers' inner
    loop). A stream with no detection device is left out (zeros); a stream with no re-ID
    device completes when its detection does."""
    count = problem.num_streams
    detect_end = np.zeros(count)
    completion = np.zeros(count)
    device_free = [0.0] * problem.num_devices
    link_free: dict[tuple[int, int], float] = {}
    events: list[tuple[float, int, int]] = []
    for stream, device in enumerate(detect):
        if device is not None:
            events.append((float(problem.upload_s[device, stream]), stream, _DETECT))
    heapq.heapify(events)
    while events:
        ready, stream, stage = heapq.heappop(events)
        source, target = detect[stream], reid[stream]
        assert source is not None  # only streams with a detecting device have events
        if stage == _TRANSFER:
            assert target is not None  # a transfer goes to the re-identifying device
            link = (source, target)
            start = max(ready, link_free.get(link, 0.0))
            end = start + problem.transfer_s(source, target, stream)
            link_free[link] = end
            heapq.heappush(events, (end, stream, _REID))
            continue
        device = source if stage == _DETECT else target
        assert device is not None  # a re-identification event has its device
        start = max(ready, device_free[device])
        if stage == _DETECT:
            end = start + float(problem.detect_s[device, stream])
            detect_end[stream] = end
            if target is None:
                completion[stream] = end
            else:
                next_stage = _REID if target == source else _TRANSFER
                heapq.heappush(events, (end, stream, next_stage))
        else:
            end = start + float(problem.reid_s[device, stream])
            completion[stream] = end
        device_free[device] = end
    return detect_end, completion
