"""The edge side of the replay benchmark: a real edge process with the product's default
settings, one rate step of replay against it, and what became of every replayed frame.

Each step starts a replayer process (`python -m edgebus.bench.replay`) for N cameras at
period T and waits for its `ready` line (the edge's CPU is read then) and its `done` line.
It then waits until the edge's local store holds an outcome for every frame sent, or
`drain_s` passes: a `results` row (its latency_ms is capture to result), a `frames` row
dropped with a reason, or a `frame_refused` event (a frame the edge refused to take).
A frame with none is lost; one with two is duplicated. The edge's CPU seconds are read
again at the end, its RSS sampled throughout (psutil).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

from edgebus.bench.process_fleet import CLI, Fleet, logged, product_defaults, wait_for
from edgebus.bench.processes import terminate
from edgebus.bench.replay import ModelThroughput, ReplayPlan
from edgebus.bench.rss_sampler import RssSampler
from edgebus.config import Settings
from edgebus.storage.audit import reason_class
from edgebus.storage.runtime import local_store_path

FrameKey = tuple[str, int, int]  # (camera, incarnation, frame_id)
EDGE_ID = "edge-replay"
CLOUD_ID = "cloud-replay"


class ReplayedEdge(Protocol):
    """An edge process a replay step measures: the real edge, or the floor edge."""

    process: psutil.Process | None
    store: Path  # its SQLite store, with the product's tables

    def cpu_s(self) -> float: ...

    def thread_cpu_s(self) -> dict[int, float]: ...


def process_cpu_s(process: psutil.Process | None) -> float:
    """CPU seconds of the whole process, every thread."""
    assert process is not None
    times = process.cpu_times()
    return times.user + times.system


def threads_cpu_s(process: psutil.Process | None) -> dict[int, float]:
    """CPU seconds of each of the process's threads, by thread id (the main one's is the pid)."""
    assert process is not None
    return {t.id: t.user_time + t.system_time for t in process.threads()}


class EdgeUnderTest:
    """One `edgebus node --role edge` process on `broker_url`, its store under data_dir, and
    the cloud node that acknowledges its sync."""

    def __init__(
        self, broker_url: str, data_dir: Path, period_ms: int, cli: tuple[str, ...] = CLI
    ) -> None:
        self.fleet = Fleet(broker_url, data_dir, period_ms, env=product_defaults())
        self.store = local_store_path(Settings(data_dir=str(data_dir)), EDGE_ID)
        self.process: psutil.Process | None = None
        self.cli = cli  # how the edge's command runs: under a profiler, say

    async def start(self, timeout_s: float = 120.0) -> None:
        # A cloud node acks the edge's sync, as in a fleet: without one the edge would
        # resend its whole unacknowledged window every ack timeout, a load no fleet has.
        self.fleet.start("cloud", CLOUD_ID)
        node = self.fleet.start("edge", EDGE_ID, cli=self.cli)
        self.process = psutil.Process(node.process.pid)
        await wait_for(lambda: logged(self.fleet, EDGE_ID, " online at ") or
                       not self.fleet.running(EDGE_ID), timeout_s, "the edge online")  # fmt: skip
        if not self.fleet.running(EDGE_ID):
            raise RuntimeError(f"the edge exited:\n{self.fleet.log_text(EDGE_ID)[-2000:]}")

    def cpu_s(self) -> float:
        return process_cpu_s(self.process)

    def thread_cpu_s(self) -> dict[int, float]:
        return threads_cpu_s(self.process)

    def running(self) -> bool:
        return EDGE_ID in self.fleet.nodes and self.fleet.running(EDGE_ID)

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (it decides what it holds, then drains its sync), SIGKILL after timeout_s."""
        if EDGE_ID not in self.fleet.nodes:
            return 0
        code = await self.fleet.stop(EDGE_ID, timeout_s)
        await self.fleet.stop(CLOUD_ID, timeout_s)
        return code


@dataclass(frozen=True, slots=True)
class Usage:
    """What the edge (and the broker) spent during a step, ready to settled."""

    edge_cpu_s: float
    loop_cpu_s: float  # the edge's main thread: its event loop
    classify_cpu_s: float  # its busiest other thread: the classifier's worker
    busy_s: float
    peak_rss: int
    broker_cpu_s: float


@dataclass(slots=True)
class Outcomes:
    """Every outcome the edge's store holds for the frames of one step."""

    latencies_ms: dict[FrameKey, float] = field(default_factory=dict)
    reasons: dict[FrameKey, str] = field(default_factory=dict)
    counts: Counter[FrameKey] = field(default_factory=Counter)


def read_outcomes(store: Path, incarnations: list[int]) -> Outcomes:
    """Results, drops and refusals of these camera runs, from the edge's local store."""
    out = Outcomes()
    if not store.is_file() or not incarnations:
        return out
    marks = ",".join("?" * len(incarnations))
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5.0)) as db:
        results = db.execute(
            "SELECT camera, incarnation, frame_id, latency_ms FROM results "
            f"WHERE incarnation IN ({marks})", incarnations,
        ).fetchall()  # fmt: skip
        drops = db.execute(
            "SELECT camera, incarnation, frame_id, reason FROM frames "
            f"WHERE direction = 'dropped' AND incarnation IN ({marks})", incarnations,
        ).fetchall()  # fmt: skip
        events = db.execute("SELECT detail FROM events WHERE kind = 'frame_refused'").fetchall()
    wanted = set(incarnations)
    for camera, incarnation, frame_id, latency in results:
        key = (camera, int(incarnation), int(frame_id))
        out.latencies_ms[key] = float(latency)
        out.counts[key] += 1
    for camera, incarnation, frame_id, reason in drops:
        key = (camera, int(incarnation), int(frame_id))
        out.reasons[key] = reason_class(reason or "unknown")
        out.counts[key] += 1
    for (detail,) in events:
        refused = json.loads(detail)
        if refused.get("incarnation") in wanted:
            key = (refused["camera"], int(refused["incarnation"]), int(refused["frame_id"]))
            out.reasons[key] = "refused: " + reason_class(refused.get("reason", ""))
            out.counts[key] += 1
    return out


def count_outcomes(store: Path, incarnations: list[int]) -> int:
    """How many distinct frames of these camera runs have an outcome in the store."""
    if not store.is_file() or not incarnations:
        return 0
    marks = ",".join("?" * len(incarnations))
    frame = "json_extract(detail, '$.{}')"
    query = (
        f"SELECT COUNT(*) FROM (SELECT camera, incarnation, frame_id FROM results "
        f"WHERE incarnation IN ({marks}) UNION SELECT camera, incarnation, frame_id FROM "
        f"frames WHERE direction = 'dropped' AND incarnation IN ({marks}) UNION SELECT "
        f"{frame.format('camera')}, {frame.format('incarnation')}, {frame.format('frame_id')} "
        f"FROM events WHERE kind = 'frame_refused' AND {frame.format('incarnation')} "
        f"IN ({marks}))"
    )
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5.0)) as db:
        (count,) = db.execute(query, incarnations * 3).fetchone()
    return int(count)


async def _next_event(report: Path, event: str, process: Any, timeout_s: float) -> dict[str, Any]:
    def found() -> bool:
        return process.poll() is not None or (report.exists() and f'"{event}"' in
                                                 report.read_text())  # fmt: skip

    await wait_for(found, timeout_s, f"the replayer's {event!r}")
    for line in report.read_text().splitlines():
        record: dict[str, Any] = json.loads(line)
        if record["event"] == event:
            return record
    raise RuntimeError(f"the replayer exited ({process.poll()}) before {event!r}")


def replayer_command(broker_url: str, plan: ReplayPlan, report: Path) -> list[str]:
    return [sys.executable, "-m", "edgebus.bench.replay", "--broker", broker_url,
            "--cameras", str(plan.cameras), "--period-ms", str(plan.period_ms),
            "--duration", str(plan.duration_s), "--report", str(report),
            "--site", plan.site]  # fmt: skip


def _cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


async def run_step(
    edge: ReplayedEdge, broker_url: str, plan: ReplayPlan, workdir: Path,
    models: ModelThroughput | None = None, broker_pid: int | None = None, drain_s: float = 15.0,
) -> dict[str, Any]:  # fmt: skip
    """One rate step: replay `plan` at the edge; returns the step's row."""
    report = workdir / f"replay-{plan.cameras}.jsonl"
    report.unlink(missing_ok=True)
    log = (workdir / f"replay-{plan.cameras}.log").open("wb")
    process = subprocess.Popen(replayer_command(broker_url, plan, report), stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    assert edge.process is not None
    sampler = RssSampler({"edge": edge.process})
    try:
        ready = await _next_event(report, "ready", process, 90.0)
        cpu0, broker0, wall0 = edge.cpu_s(), _cpu_of(broker_pid), time.monotonic()
        threads0 = edge.thread_cpu_s()
        sampler.start()
        nominal_s = plan.frames_per_camera * plan.period_ms / 1000.0
        done = await _next_event(report, "done", process, nominal_s + 120.0)
        unsent = {(camera, frame_id) for camera, frame_id in done["unsent"]}
        expected = {
            (camera, incarnation, frame_id)
            for camera, incarnation in ready["cameras"].items()
            for frame_id in range(plan.frames_per_camera)
            if (camera, frame_id) not in unsent
        }
        incarnations = list(ready["cameras"].values())

        until = time.monotonic() + drain_s
        # Every 0.5 s: the count is cheap, but the edge may still be deciding.
        while count_outcomes(edge.store, incarnations) < len(expected):
            if time.monotonic() > until:
                break  # what is missing then is lost, and counted
            await asyncio.sleep(0.5)
        edge_cpu_s, broker_cpu_s = edge.cpu_s() - cpu0, _cpu_of(broker_pid) - broker0
        threads = {t: cpu - threads0.get(t, 0.0) for t, cpu in edge.thread_cpu_s().items()}
        busy_s = time.monotonic() - wall0
        with contextlib.suppress(AssertionError):  # past `done` it only has to exit
            await wait_for(lambda: process.poll() is not None, 10.0, "the replayer to exit")
    finally:
        sampler.stop()
        peak_rss = sampler.peak.get("edge", 0)
        terminate(process)
        log.close()
    outcomes = read_outcomes(edge.store, incarnations)
    assert edge.process is not None
    loop_s = threads.pop(edge.process.pid, 0.0)
    usage = Usage(edge_cpu_s, loop_s, max(threads.values(), default=0.0), busy_s, peak_rss,
                  broker_cpu_s)  # fmt: skip
    row = step_row(plan, done, expected, outcomes, usage, models)
    row["replayer_exit"] = process.returncode  # 0: it ended by itself, after `done`
    return row


def step_row(
    plan: ReplayPlan, done: dict[str, Any], expected: set[FrameKey], outcomes: Outcomes,
    usage: Usage, models: ModelThroughput | None,
) -> dict[str, Any]:  # fmt: skip
    sent, edge_cpu_s = len(expected), usage.edge_cpu_s
    latencies = np.array([v for k, v in outcomes.latencies_ms.items() if k in expected])
    reasons = Counter(v for k, v in outcomes.reasons.items() if k in expected)
    results = int(latencies.size)
    send_s = max(float(done["send_wall_s"]), 1e-9)
    p99 = float(np.percentile(latencies, 99)) if results else float("nan")
    inference_ms = models.batch1_cpu_ms if models is not None else float("nan")
    per_frame = edge_cpu_s * 1000.0 / sent if sent else float("nan")
    # What the edge spends on a frame beyond its decode + classify (at batch 1, as frames
    # spread over the period mostly come one at a time); a dropped frame has no inference.
    beyond = (edge_cpu_s * 1000.0 - results * inference_ms) / sent if sent else float("nan")
    row: dict[str, Any] = {
        "rate_offered": plan.rate,
        "cameras": plan.cameras,
        "period_ms": plan.period_ms,
        "frames_sent": sent,
        "unsent": len(done["unsent"]),
        "chunks_per_frame": int(done["chunks"]) / max(1, int(done["frames"])),
        "results": results,
        "results_per_s": results / send_s,
        "dropped": sum(reasons.values()),
        "lost": sum(1 for k in expected if outcomes.counts[k] == 0),
        "duplicated": sum(1 for k in expected if outcomes.counts[k] > 1),
        "drop_reasons": "; ".join(f"{r} {n}" for r, n in reasons.most_common()),
        "p50_ms": float(np.percentile(latencies, 50)) if results else float("nan"),
        "p99_ms": p99,
        "within_target": bool(results and p99 <= plan.period_ms + 100),
        "edge_cpu_s": edge_cpu_s,
        "edge_cpu_pct": edge_cpu_s / usage.busy_s * 100.0,
        "edge_cpu_ms_per_frame": per_frame,
        "edge_beyond_inference_ms": beyond,
        # The same split measured on the edge's threads: its event loop, its classifier's
        # worker (decode + classify) and the rest (store writes and the sync).
        "edge_loop_ms_per_frame": usage.loop_cpu_s * 1000.0 / max(sent, 1),
        "edge_classify_ms_per_result": usage.classify_cpu_s * 1000.0 / max(results, 1),
        "edge_outside_classify_ms": (edge_cpu_s - usage.classify_cpu_s) * 1000.0 / max(sent, 1),
        "edge_peak_rss_mb": usage.peak_rss / 2**20,
        "replayer_cpu_ms_per_frame": float(done["cpu_s"]) * 1000.0 / max(1, int(done["frames"])),
        "replayer_late_p99_ms": float(done["late_p99_ms"]),
        "broker_cpu_pct": usage.broker_cpu_s / usage.busy_s * 100.0,
        "ratio_batch1": results / send_s / models.batch1_fps if models else float("nan"),
        "ratio_best": results / send_s / models.best_fps if models else float("nan"),
    }
    return row
