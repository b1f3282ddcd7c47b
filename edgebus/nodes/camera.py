"""Camera node: capture every T, encode off the event loop, send units most important first
until the deadline, then an end marker (the PNC paper's device side, Sec. V-G).

Pipeline, as asyncio tasks:

    capture (every T) -> gate -> encoder (worker thread) -> sender (paced by the link)

- The encoder and the sender (`frame_sender.py`) own the deadline: a frame's units go out
  most important first until frame i+1 is due or its first unit is ready, paced by the
  emulated link, then the end marker.
- The gate decides per frame whether it goes to the edge at all. By default every frame
  does, truncated at its deadline (the PNC system). With `offload` set (never, always,
  baseline, mdp, dqn) the gate is the offloading paper's: the weak model classifies every
  frame, a policy spends a token of the bucket on the frames worth offloading, and those
  are sent whole (every unit); a frame that stays gets the weak model's answer published
  as the camera's own result, so every frame has exactly one result.
- Under the default gate, which never looks at a frame, the encoder thread reads the
  frame too: one thread hop per frame. A gate that looks at frames has each read on the
  source's own thread first. Either way a capture waits for the previous frame's encoding
  if it is still under way, so a source slower than the period skips slots, not queues.
- Every frame sent is followed to its outcome (`frame_outcomes.py`): the camera asks
  again for frames no edge answered and records a dropped frame itself only where no
  edge will. Each start draws a new `incarnation`, so frame ids that restart at 0 never
  collide with an earlier run's.

The camera's parts are built and checked from its settings in `camera_setup.py`; what it
keeps in its store about its frames (sent, dropped, still open, offload decisions) is
`camera_records.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from edgebus.actor.lifecycle import Node
from edgebus.broker.bus import BusError, OutgoingQueueFull
from edgebus.broker.link import LinkEmulator
from edgebus.broker.tracing import traced
from edgebus.clock import Clock
from edgebus.config import Settings
from edgebus.messages import Result, answered_in_time
from edgebus.nodes.camera_records import CameraRecords
from edgebus.nodes.camera_setup import camera_parts
from edgebus.nodes.counters import CameraCounters
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.frame_job import EncodeJob, FrameReadFailed, SenderSetup, SentFrame
from edgebus.nodes.frame_outcomes import OutcomeTimings, OutcomeTracker
from edgebus.nodes.frame_sender import FrameSender
from edgebus.nodes.offload_gate import OffloadEveryFrame, OffloadGate, PolicyGate, WeakAnswer
from edgebus.nodes.qos_models import QosEncoder
from edgebus.nodes.sources import UNREAD, CapturedFrame, Frame, FrameSource
from edgebus.nodes.stream_policy import ANY_PEER, CameraSchedule

log = logging.getLogger("edgebus.camera")


class CameraNode(Node):
    role = "camera"
    capabilities = ("source", "codec")
    counters: CameraCounters

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        max_frames: int | None = None,
        source: FrameSource | None = None,
        gate: OffloadGate | None = None,
        on_sent: Callable[[SentFrame], None] | None = None,
    ) -> None:
        super().__init__(settings, clock)
        self.counters = CameraCounters()
        # This run of the camera: part of every frame's identity (random, never 0).
        self.incarnation = secrets.randbits(52) or 1
        period_s = settings.frame_period_ms / 1000.0
        # What the store keeps about this run's frames (and asks about earlier runs').
        self.frame_records = CameraRecords(settings, self.incarnation, self.storage,
                                           self.counters)  # fmt: skip
        self.outcomes = OutcomeTracker(
            self.bus, self.topics, self.node_id, self.incarnation, self.clock,
            OutcomeTimings.for_period(period_s, settings.outcome_timeout_s),
            self.frame_records.dropped, self.frame_records.mark_open,
            self.frame_records.mark_closed,
        )  # fmt: skip
        # Every setting is checked here: a bad one is a ConfigError before anything runs.
        parts = camera_parts(settings, self.bus, self.topics, self.clock, source, gate)
        self._coding_for = parts.coding_for
        self.qos: QosEncoder | None = parts.qos
        self.block_bytes = parts.block_bytes
        self.source: FrameSource = parts.source
        self.link: LinkEmulator | None = parts.link
        self.schedule: CameraSchedule | None = parts.schedule
        self.frame_bytes = 0.0  # a full frame's size, estimated at start (for schedulers)
        self.gate: OffloadGate = parts.gate
        # Under a token bucket an offloaded frame is sent whole: the decision bought the
        # strong model's answer on the full frame, not on what a deadline lets through.
        self.whole_frames = isinstance(self.gate, PolicyGate)
        self.max_frames = max_frames
        self.on_sent = on_sent
        self._jobs: asyncio.Queue[EncodeJob] = asyncio.Queue()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"{self.node_id}-source")
        # The default gate never looks at a frame, so the encoder thread reads it as well:
        # one thread hop per frame instead of two.
        self._read_on_encoder = isinstance(self.gate, OffloadEveryFrame)
        self._last_job: EncodeJob | None = None
        self.sender = FrameSender(
            self.bus, self.topics, self.clock,
            SenderSetup(self.node_id, self.incarnation, settings.frame_width,
                        settings.frame_height, self.block_bytes, self.whole_frames),
            self._link_for, self.counters,
        )  # fmt: skip

    def _link_for(self, edge: str) -> LinkEmulator | None:
        # Under a schedule each edge has its own (capped) link; else the one uplink.
        return self.schedule.route.link_to(edge) if self.schedule is not None else self.link

    # -- capture --------------------------------------------------------------------------

    async def start_services(self) -> None:
        self.frame_bytes = await asyncio.to_thread(self._full_frame_bytes)
        await self.outcomes.start()
        if self.qos is not None:
            await self.qos.start()
        if self.schedule is not None:
            await self.schedule.start()

    def service_tasks(self) -> list[asyncio.Task[None]]:
        tasks = list(self.outcomes.tasks)
        if self.qos is not None:
            tasks += self.qos.follower.tasks
        if self.schedule is not None:
            tasks += self.schedule.tasks
        return tasks

    async def stop_services(self) -> None:
        await self.outcomes.stop()
        if self.qos is not None:
            await self.qos.stop()
        if self.schedule is not None:
            await self.schedule.stop()

    def _full_frame_bytes(self) -> float:
        """Every unit of the source's first frame: what the camera would send unhindered."""
        frame = self.source.frame(0)
        return float(sum(len(unit) for unit in self._coding_for(0.0).units(frame.image)))

    def resources(self) -> dict[str, float]:
        resources = super().resources()
        resources["frame_bytes"] = self.frame_bytes
        resources["frame_rate"] = 1000.0 / self.settings.frame_period_ms
        return resources

    def link_rates(self) -> dict[str, float]:
        if self.schedule is not None:
            return self.schedule.route.rates()
        return {ANY_PEER: self.link.trace.mean_rate()} if self.link is not None else {}

    async def main(self) -> None:
        period_s = self.settings.frame_period_ms / 1000.0
        await self.frame_records.ask_about_earlier_runs(self.outcomes)
        sender = self.supervise(self._send_loop(), "send")
        self.ready.set()
        try:
            next_capture = self.clock.monotonic()
            frame_id = 0
            while self.max_frames is None or frame_id < self.max_frames:
                await self._capture(frame_id, next_capture + period_s)
                frame_id += 1
                next_capture += period_s
                delay = next_capture - self.clock.monotonic()
                if delay < 0:
                    # Running late: skip the missed capture slots rather than bursting.
                    self.counters.frames_skipped += int(-delay // period_s) + 1
                    next_capture += period_s * (int(-delay // period_s) + 1)
                    delay = next_capture - self.clock.monotonic()
                await self.clock.sleep(delay)
            await self._jobs.join()
            await self.stopping.wait()
        finally:
            # A stopping camera finishes the frames it already captured (their end markers
            # and "sent" records) rather than cutting one mid-send; two periods at most.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._jobs.join(), 2 * period_s + 1.0)
            sender.cancel()
            # A sender that failed has stopped the node already, with its reason.
            await asyncio.gather(sender, return_exceptions=True)
            # Their outcomes follow within a few periods (longer from a busy edge); what
            # is still open then is asked about again by the next start.
            with contextlib.suppress(asyncio.CancelledError):
                await self.outcomes.settle(self.outcomes.timings.settle_s)
            await self.sender.finish()  # it may be reading the source
            await asyncio.get_running_loop().run_in_executor(self._reader, self.source.close)
            self._reader.shutdown(wait=False)

    async def _capture(self, frame_id: int, deadline_mono: float) -> None:
        previous = self._last_job
        if previous is not None and not previous.encoded.is_set():
            # The source (or encoder) is slower than the period: wait for its last frame,
            # and the capture loop skips the slots missed, as it does when it awaits a read.
            await previous.encoded.wait()
        now_mono, now_ts = self.clock.monotonic(), self.clock.time()
        slot = CapturedFrame(
            frame_id=frame_id,
            image=UNREAD,
            label=-1,
            capture_ts=now_ts,
            capture_mono=now_mono,
            deadline_mono=deadline_mono,
            deadline_ts=now_ts + (deadline_mono - now_mono),
        )
        if self.schedule is not None and self.schedule.edge is None:
            self.counters.frames_unassigned += 1
            await self.outcomes.drop_now(frame_id, now_ts, "no edge assigned")
            return
        if self._read_on_encoder:
            self._encode(slot, read=self.source.frame)
            return
        # A frame is a file read and decode (folder, video) or a render: off the loop, on
        # the source's own thread, so reads stay in order and never overlap its close.
        frame = await asyncio.get_running_loop().run_in_executor(
            self._reader, self.source.frame, frame_id
        )
        captured = dataclasses.replace(slot, image=frame.image, label=frame.label)
        admission = await self.gate.admit(captured)
        if admission.weak is not None:
            self.frame_records.decision(captured, admission.weak)
        if not admission.offload:
            self.counters.frames_kept_local += 1
            if admission.weak is not None:
                await self._publish_local_result(captured, admission.weak)
            return
        self._encode(captured)

    def _encode(self, frame: CapturedFrame, read: Callable[[int], Frame] | None = None) -> None:
        edge = self.schedule.edge if self.schedule is not None else None
        job = EncodeJob(frame, self._coding_for(frame.capture_ts), edge or "", read=read)
        self.sender.encode(job)
        self._jobs.put_nowait(job)
        self._last_job = job

    async def _publish_local_result(self, frame: CapturedFrame, weak: WeakAnswer) -> None:
        now = self.clock.time()
        latency_ms = (now - frame.capture_ts) * 1000.0
        result = Result(
            node=self.node_id,
            camera=self.node_id,
            frame_id=frame.frame_id,
            top_k=weak.top_k,
            scores=weak.scores,
            bytes_received=0,
            chunks_received=0,
            latency_ms=latency_ms,
            offloaded=False,
            deadline_met=answered_in_time(now, frame.deadline_ts),
            ts=now,
            codec="weak",
            label=frame.label,
            incarnation=self.incarnation,
            names=list(weak.names),
        )
        # The row is the record; the message tells subscribers. Stored either way.
        self.record_result(result)
        self.counters.local_results += 1
        try:
            trace = traced(self.node_id, self.incarnation, frame.frame_id)
            await self.bus.publish(
                self.topics.result(self.node_id), result, qos=1, properties=trace
            )
        except BusError as exc:
            self.counters.results_unpublished += 1
            log.debug("local result of frame %d not published: %s", frame.frame_id, exc)

    # -- sending --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                sent, marker = await self.sender.send(job)
                self.outcomes.sent(marker)
                self._account(sent, job.coding, job.edge)
            except FrameReadFailed:
                # As a read on the capture path: the camera stops, loudly. The frame was
                # never published, so it has no record, and none is owed.
                raise
            except OutgoingQueueFull as exc:
                self.counters.frames_dropped += 1
                log.debug("frame %d not sent whole: %s", job.frame.frame_id, exc)
                await self._unsent(job, str(exc))
            except Exception as exc:
                # A bug must not silently stop the camera: the frame ends with a record,
                # loudly, and the next one is sent.
                self.counters.send_errors += 1
                log.exception("frame %d not sent: %s", job.frame.frame_id, exc)
                await self._unsent(job, f"send failed: {exc}")
            finally:
                self._jobs.task_done()

    async def _unsent(self, job: EncodeJob, reason: str) -> None:
        frame = job.frame
        if job.chunks_out == 0:
            # Nothing of it reached the bus, so no edge can decide it: the camera records.
            await self.outcomes.drop_now(frame.frame_id, frame.capture_ts, reason, job.edge)
            return
        # Some chunks are out and an edge may decide the frame from them: follow it to its
        # outcome instead of recording a second one here.
        self.outcomes.sent(self.sender.end_marker(job, job.chunks_out, 0, 0))

    def _account(self, sent: SentFrame, coding: FrameCoding, edge: str) -> None:
        complete = sent.units_sent == sent.units_total
        self.counters.frames_sent += 1
        self.counters.bytes_sent += sent.wire_bytes
        self.counters.units_sent += sent.units_sent
        self.counters.overruns += sent.overruns
        if complete:
            self.counters.frames_complete += 1
        else:
            self.counters.frames_truncated += 1
        self.frame_records.sent(sent, coding, edge)
        if self.on_sent is not None:
            self.on_sent(sent)

    def stats(self) -> dict[str, float]:
        stats = super().stats()
        schedule = self.schedule
        link = schedule.route.link_to(schedule.edge) if schedule is not None else self.link
        if link is not None:
            stats["link_rate"] = link.rate_now()
        if schedule is not None:
            stats["policy_changes"] = float(schedule.policy_changes)
        if isinstance(self.gate, PolicyGate):
            stats["bucket_tokens"] = self.gate.decider.bucket.tokens
        return stats
