"""The replay side of the edge benchmark: frames coded once, then sent for many cameras.

python -m edgebus.bench.replay --broker URL --cameras N --period-ms T --duration S
    --report FILE [--frames 16] [--codec pnc] [--size 64] [--site lab]

`pre_encode` codes K source frames once, as a camera does (the camera's codec, built from
the codec spec by `codec_choice`, on synthetic frames from `sources`). The replayer, a
process of its own, then plays N cameras (`replay-0` .. `replay-N-1`, each with its own
incarnation) at one frame per camera per period T, the cameras spread evenly over the
period. Every frame goes through the camera's own `FrameSender` on one `Bus`: its units
cut into `FrameChunk`s (QoS 0, with the chunk expiry), then its `EndOfFrame` (QoS 1,
with the trace properties). Only the headers change per frame (camera, frame id,
incarnation, capture time, which is the wall time at send); the codec bytes are the
ones coded once. What it did goes to --report as JSON lines: `ready` just before the
first frame, `done` once the bus has flushed.

`model_throughput` measures, in the calling process, the edge's own decode and classify
call (`FrameClassifier.classify_batch`) on the same frames, assembled by the edge's
`FrameAssembler`: the models' throughput the edge is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions, OutgoingQueueFull
from edgebus.broker.link import LinkEmulator
from edgebus.clock import RealClock
from edgebus.codecs.classifier import Classifier
from edgebus.messages import EndOfFrame, FrameChunk
from edgebus.nodes.assembler import FrameAssembler, PendingFrame
from edgebus.nodes.chunking import BYTE_CODEC_BLOCK, Chunker
from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.counters import CameraCounters
from edgebus.nodes.decoding import FrameClassifier
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.frame_job import EncodeJob, SenderSetup
from edgebus.nodes.frame_sender import FrameSender
from edgebus.nodes.sources import CapturedFrame, open_source
from edgebus.topics import Topics

CAMERA_PREFIX = "replay"
NO_IMAGE = np.zeros((0,), dtype=np.uint8)  # the sender never looks at the image


@dataclass(frozen=True, slots=True)
class CodedFrame:
    """One source frame as its camera's codec coded it: its units, most important first."""

    label: int
    units: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class FrameBank:
    """K frames coded once, and how a camera names and cuts them."""

    codec: str
    model_id: str
    size: int
    block_bytes: int  # 0: one unit per chunk (PNC), else byte blocks (file codecs)
    frames: tuple[CodedFrame, ...]

    def coding(self) -> FrameCoding:
        # The sender reads units from the job, never from the coding: no coder needed.
        return FrameCoding(self.codec, self.model_id, lambda _image: ())

    @property
    def mean_bytes(self) -> float:
        return float(np.mean([sum(len(u) for u in f.units) for f in self.frames]))


def pre_encode(count: int = 16, codec: str = "pnc", size: int = 64, seed: int = 0) -> FrameBank:
    """`count` synthetic frames coded with `codec` (a camera's codec spec) at `size` px."""
    choice = parse_codec(codec)
    coder = choice.build(size)
    source = open_source("synthetic", size, seed=seed)
    try:
        frames = tuple(
            CodedFrame(frame.label, tuple(coder.encode_stream(frame.image)))
            for frame in (source.frame(i) for i in range(count))
        )
    finally:
        source.close()
    # As camera_setup does with chunk_bytes = 0: unit codecs one unit per chunk, files in blocks.
    block = 0 if choice.unit_stream else BYTE_CODEC_BLOCK
    return FrameBank(choice.name, choice.model_id, size, block, frames)


# -- the replayer -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    cameras: int
    period_ms: int
    duration_s: float
    site: str = "lab"

    @property
    def frames_per_camera(self) -> int:
        return max(1, int(self.duration_s * 1000 / self.period_ms))

    @property
    def rate(self) -> float:
        """Frames per second offered: N cameras, one frame each per period."""
        return self.cameras * 1000.0 / self.period_ms


def _no_link(_edge: str) -> LinkEmulator | None:
    return None  # link "off", the default: a camera sends as fast as the bus takes it


class Replayer:
    """N simulated cameras on one Bus, each with the camera's own FrameSender."""

    def __init__(self, bus: Bus, bank: FrameBank, plan: ReplayPlan) -> None:
        self.bus, self.bank, self.plan = bus, bank, plan
        self.clock = RealClock()
        self.coding = bank.coding()
        self.incarnations = {
            f"{CAMERA_PREFIX}-{i}": secrets.randbits(52) or 1 for i in range(plan.cameras)
        }
        topics = Topics(plan.site)
        counters = CameraCounters()
        # Whole frames: with no emulated link every unit of a frame is out long before its
        # deadline, as from a real camera; this skips only the per-unit deadline waits.
        self.senders = [
            FrameSender(
                bus, topics, self.clock, self._setup(camera, incarnation), _no_link, counters
            )
            for camera, incarnation in self.incarnations.items()
        ]
        self.lateness_s: list[float] = []
        self.unsent: list[tuple[str, int]] = []
        self.chunks = self.wire_bytes = 0

    def _setup(self, camera: str, incarnation: int) -> SenderSetup:
        bank = self.bank
        return SenderSetup(camera, incarnation, bank.size, bank.size, bank.block_bytes,
                           whole_frames=True)  # fmt: skip

    async def send_frame(self, camera: int, frame_id: int) -> None:
        period_s = self.plan.period_ms / 1000.0
        coded = self.bank.frames[(frame_id + camera) % len(self.bank.frames)]
        mono, ts = self.clock.monotonic(), self.clock.time()
        frame = CapturedFrame(frame_id, NO_IMAGE, coded.label, ts, mono, mono + period_s,
                              ts + period_s)  # fmt: skip
        job = EncodeJob(frame, self.coding)
        for unit in coded.units:
            job.unit_sizes.append(len(unit))
            job.units.put_nowait(unit)
        job.units.put_nowait(None)
        job.first_ready_mono = mono
        job.encoded.set()
        sender = self.senders[camera]
        try:
            sent, _ = await sender.send(job)
        except OutgoingQueueFull:
            self.unsent.append((sender.setup.camera, frame_id))
            return
        self.chunks += sent.chunks_sent
        self.wire_bytes += sent.wire_bytes

    async def run(self) -> None:
        """Camera i sends frame j at t0 + j*T + i*T/N: the fleet's frames evenly spread."""
        plan = self.plan
        spacing = plan.period_ms / 1000.0 / plan.cameras
        start = self.clock.monotonic()
        for k in range(plan.frames_per_camera * plan.cameras):
            delay = start + k * spacing - self.clock.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness_s.append(max(0.0, -delay))
            await self.send_frame(k % plan.cameras, k // plan.cameras)

    def close(self) -> None:
        for sender in self.senders:
            sender.close()


def _percentile_ms(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000.0) if values else 0.0


async def replay(broker: str, bank: FrameBank, plan: ReplayPlan, report: Path) -> None:
    """Connect, announce `ready`, replay the plan, flush, then write `done`."""
    options = BusOptions(site=plan.site, node_id=f"{CAMERA_PREFIX}-{secrets.token_hex(4)}")
    bus = Bus(parse_broker_url(broker), options)
    await bus.start(timeout=30.0)
    replayer = Replayer(bus, bank, plan)
    with report.open("a") as out:

        def line(event: str, **fields: Any) -> None:
            out.write(json.dumps({"event": event, **fields}) + "\n")
            out.flush()

        line("ready", ts=time.time(), cameras=replayer.incarnations,
             frames_per_camera=plan.frames_per_camera, rate=plan.rate)  # fmt: skip
        cpu0, wall0 = time.process_time(), time.monotonic()
        try:
            await replayer.run()
            send_wall_s = time.monotonic() - wall0
            await bus.close()
        finally:
            replayer.close()
        line("done", ts=time.time(), cpu_s=time.process_time() - cpu0,
             wall_s=time.monotonic() - wall0, send_wall_s=send_wall_s,
             frames=len(replayer.lateness_s) - len(replayer.unsent), unsent=replayer.unsent,
             chunks=replayer.chunks, wire_bytes=replayer.wire_bytes,
             late_p50_ms=_percentile_ms(replayer.lateness_s, 50),
             late_p99_ms=_percentile_ms(replayer.lateness_s, 99),
             late_max_ms=max(replayer.lateness_s, default=0.0) * 1000.0,
             queue_full=bus.stats.queue_full,
             unacknowledged=bus.stats.unacknowledged)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay pre-encoded frames for N cameras.")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--cameras", type=int, required=True)
    parser.add_argument("--period-ms", type=int, default=500)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--codec", default="pnc")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--site", default="lab")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.period_ms < 1 or args.duration <= 0:
        parser.error("--cameras, --period-ms and --duration must be positive")
    bank = pre_encode(args.frames, args.codec, args.size)
    plan = ReplayPlan(args.cameras, args.period_ms, args.duration, args.site)
    # Nothing the benchmark starts may outlive it: the whole replay is bounded.
    limit_s = plan.frames_per_camera * plan.period_ms / 1000.0 + 90.0
    asyncio.run(asyncio.wait_for(replay(args.broker, bank, plan, args.report), limit_s))
    return 0


# -- the models' own throughput -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelThroughput:
    """Frames/s and CPU ms per frame of decode + classify, by batch size."""

    fps: dict[int, float]
    cpu_ms: dict[int, float]

    @property
    def best_batch(self) -> int:
        return max(self.fps, key=lambda b: self.fps[b])

    @property
    def batch1_fps(self) -> float:
        return self.fps[1] if 1 in self.fps else self.fps[min(self.fps)]

    @property
    def best_fps(self) -> float:
        return self.fps[self.best_batch]

    @property
    def batch1_cpu_ms(self) -> float:
        return self.cpu_ms[1] if 1 in self.cpu_ms else self.cpu_ms[min(self.cpu_ms)]


def assembled(bank: FrameBank) -> list[PendingFrame]:
    """The bank's frames as the edge's assembler hands them to the classifier: every
    chunk, then the end marker."""
    assembler = FrameAssembler()
    frames: list[PendingFrame] = []
    for frame_id, coded in enumerate(bank.frames):
        chunker = Chunker(bank.block_bytes)
        chunks = [c for unit in coded.units for c in chunker.add(unit)] + chunker.flush()
        for index, chunk in enumerate(chunks):
            message = FrameChunk("bench", frame_id, index, bank.codec, bank.model_id, 1.0,
                                 chunk.data, incarnation=1)  # fmt: skip
            assembler.add_chunk(message, 0.0)
        marker = EndOfFrame("bench", frame_id, len(chunks), len(chunks),
                            sum(len(c.data) for c in chunks), bank.codec, bank.model_id, 1.0,
                            2.0, bank.size, bank.size, len(coded.units), coded.label,
                            incarnation=1)  # fmt: skip
        frames += assembler.end(marker, 0.0)
    return frames


def model_throughput(
    bank: FrameBank, classifier: str = "strong", batches: Sequence[int] = (1, 8, 32),
    seconds: float = 2.0, windows: int = 4,
) -> ModelThroughput:  # fmt: skip
    """The edge's decode + classify (`FrameClassifier.classify_batch`) on the bank's
    frames, at each batch size, for about `seconds` each: the best of `windows` equal
    windows, so a neighbour's burst on a shared machine does not pass for the models'."""
    frames = FrameClassifier(Classifier(classifier), bank.size)
    pending = assembled(bank)
    fps: dict[int, float] = {}
    cpu_ms: dict[int, float] = {}
    for size in batches:
        batch = [pending[i % len(pending)] for i in range(size)]
        frames.classify_batch(batch)  # warm-up (and the decoder is built)
        for _ in range(windows):
            done, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - wall0 < seconds / windows or done == 0:
                frames.classify_batch(batch)
                done += size
            rate = done / (time.perf_counter() - wall0)
            if rate > fps.get(size, 0.0):
                fps[size] = rate
                cpu_ms[size] = (time.process_time() - cpu0) * 1000.0 / done
    return ModelThroughput(fps, cpu_ms)


if __name__ == "__main__":
    sys.exit(main())
