"""Discrete-event simulation of the online setting (thesis Algs. 3-4): jobs arrive, wait in a
queue, hold their nodes and bandwidth while they run, and release them when done.

Each job processes a fixed number of frames (a clip from its camera), so a job that gets a
better placement and more bandwidth finishes sooner and frees its nodes for the queue: the
throughput a scheduler gives shows up again as shorter waits. A fixed run time would hide
that. Under OTFA a running job's rate changes whenever JRBA re-plans, so progress is
integrated piecewise: between two events every running job advances at its current rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgebus.research.ents_model import Job, JobError
from edgebus.research.ents_rounds import SCHEDULERS, RoundOptions, run_round
from edgebus.research.ents_state import ClusterState
from edgebus.research.topology import Network

_EPS = 1e-9


class SimulationError(ValueError):
    """Inputs under which the simulation cannot finish (a job that can never start)."""


@dataclass(frozen=True, eq=False)
class Arrival:
    time: float
    job: Job


@dataclass(frozen=True)
class JobOutcome:
    job: str
    arrival: float
    start: float
    finish: float
    frames: int

    @property
    def waiting(self) -> float:
        return self.start - self.arrival

    @property
    def throughput(self) -> float:
        """Frames/s over the job's run: frames / (finish - start)."""
        span = self.finish - self.start
        return math.inf if span <= 0 else self.frames / span


@dataclass(frozen=True)
class SimResult:
    scheduler: str
    outcomes: tuple[JobOutcome, ...]
    rounds: int
    round_seconds: float  # wall time spent inside scheduling rounds

    @property
    def mean_throughput(self) -> float:
        return sum(o.throughput for o in self.outcomes) / len(self.outcomes)

    @property
    def mean_waiting(self) -> float:
        return sum(o.waiting for o in self.outcomes) / len(self.outcomes)


RoundObserver = Callable[[float, ClusterState], None]


def simulate(
    network: Network,
    arrivals: Sequence[Arrival],
    scheduler: str,
    options: RoundOptions | None = None,
    observe: RoundObserver | None = None,
) -> SimResult:
    """Run every arrival to completion under `scheduler` (one of SCHEDULERS); a round runs at
    every arrival and completion. `observe(now, state)` sees the state after each round."""
    options = options or RoundOptions()
    _check(arrivals, scheduler)
    pending = sorted(arrivals, key=lambda a: a.time)
    arrived_at = {a.job.name: a.time for a in pending}
    state = ClusterState(network)
    queue: list[Job] = []
    started: dict[str, float] = {}
    remaining: dict[str, float] = {}
    outcomes: list[JobOutcome] = []
    now, rounds, busy = 0.0, 0, 0.0
    while pending or queue or state.running:
        next_arrival = pending[0].time if pending else math.inf
        next_finish = min(
            (now + remaining[name] / run.throughput for name, run in state.running.items()),
            default=math.inf,
        )
        later = min(next_arrival, next_finish)
        for name, run in state.running.items():
            step = run.throughput * (later - now) if math.isfinite(run.throughput) else math.inf
            remaining[name] = max(0.0, remaining[name] - step)
        now = later
        for name in [n for n, left in remaining.items() if left <= _EPS * (1 + _frames(state, n))]:
            run = state.remove(name)
            del remaining[name]
            outcomes.append(JobOutcome(name, arrived_at[name], started[name], now, run.job.frames))
        while pending and pending[0].time <= now:
            queue.append(pending.pop(0).job)
        tick = time.perf_counter()
        fresh = run_round(scheduler, state, queue, options)
        busy += time.perf_counter() - tick
        rounds += 1
        for run in fresh:
            started[run.job.name] = now
            remaining[run.job.name] = float(run.job.frames)
        launched = {run.job.name for run in fresh}
        queue = [job for job in queue if job.name not in launched]
        if observe is not None:
            observe(now, state)
        if queue and not pending and not state.running:
            raise SimulationError(
                f"{scheduler}: job {queue[0].name} cannot start even on an idle network "
                f"(the nodes cannot hold its tasks together)"
            )
    outcomes.sort(key=lambda o: arrived_at[o.job])
    return SimResult(scheduler, tuple(outcomes), rounds, busy)


def _frames(state: ClusterState, name: str) -> float:
    return float(state.running[name].job.frames)


def _check(arrivals: Sequence[Arrival], scheduler: str) -> None:
    if not arrivals:
        raise SimulationError("arrivals must hold at least one job")
    if scheduler not in SCHEDULERS:
        raise JobError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    names = [a.job.name for a in arrivals]
    if len(set(names)) != len(names):
        raise SimulationError("job names must be unique across arrivals")
    if any(not a.time >= 0 for a in arrivals):
        raise SimulationError("arrival times must be >= 0 seconds")
