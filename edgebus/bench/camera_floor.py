"""The least CPU a camera's libraries need per frame: the camera's own capture and encoder,
then asyncio, gmqtt and SQLAlchemy doing only what a frame needs, with none of edgebus's
node code around them. What a real camera spends beyond this floor is edgebus's own.

python -m edgebus.bench.camera_floor camera HOST PORT NAME DB --period-ms 500 \
    --warmup 10 --duration 30 [--sync-interval 10]
python -m edgebus.bench.camera_floor respond HOST PORT

Per frame, a floor camera
- wakes at the frame's due time, one period after the last;
- captures and encodes the frame on one worker thread: the camera's synthetic source and
  PNC encoder, the same work a camera does, timed by that thread's CPU clock;
- publishes it with its end marker as one QoS 1 message (a camera's 64 px frame is that
  one message too), and waits for its outcome, which the responder (another process, not
  counted) publishes back at QoS 1;
- records the frame in one SQLAlchemy Core transaction on a worker thread: its row in the
  product's `frames` table and the close of its open-frame mark, on the product's engine;
- and every sync interval publishes the rows recorded since the last sync at QoS 1, which
  the responder acknowledges at QoS 1.

At the end it prints one JSON line: the frames due in the measuring window (each answered
and recorded), the process's CPU seconds over that window, and the capture-and-encode
thread's CPU seconds for those frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gmqtt
import msgpack
from gmqtt.mqtt.constants import MQTTv50
from sqlalchemy import Engine, bindparam, select

from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.sources import SyntheticSource
from edgebus.storage.engine import ensure_schema, make_engine
from edgebus.storage.local_writes import CLOSE_FRAMES, INSERTS
from edgebus.storage.models import SENT, Frame, defaults, table_of

ROOT = "edgebus-floor"
FRAME_SIZE = 64
# An end marker and an outcome are each about this big on a camera's wire.
MARKER_BYTES = 120
OUTCOME_BYTES = 160
ANSWER_TIMEOUT_S = 5.0

_FRAMES = table_of(Frame)
_ROWS_AFTER = select(_FRAMES).where(_FRAMES.c.seq > bindparam("after")).order_by(_FRAMES.c.seq)


def frame_rows_after(engine: Engine, seq: int) -> list[dict[str, Any]]:
    """A floor's `frames` rows past `seq`, in seq order: what its next sync carries."""
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(_ROWS_AFTER, {"after": seq})]


@dataclass(frozen=True, slots=True)
class FloorReport:
    frames: int
    cpu_s: float  # the whole process, every thread, over the window
    codec_cpu_s: float  # the capture-and-encode thread, for the window's frames
    rows_synced: int  # acknowledged by the responder, over the whole run


def frame_topic(camera: str, kind: str) -> str:
    return f"{ROOT}/{camera}/{kind}"


class FloorCamera:
    """One camera's per-frame work with only the libraries: see the module docstring."""

    def __init__(self, name: str, db: Path, period_s: float, sync_interval_s: float) -> None:
        self.name = name
        self.period_s = period_s
        self.sync_interval_s = sync_interval_s
        self.source = SyntheticSource(FRAME_SIZE, seed=1)
        self.codec = parse_codec("pnc").build(FRAME_SIZE)
        self.engine: Engine = make_engine(f"sqlite:///{db}")
        ensure_schema(self.engine, str(db))
        self._capture = ThreadPoolExecutor(1, thread_name_prefix="floor-capture")
        self._store = ThreadPoolExecutor(1, thread_name_prefix="floor-store")
        self._row = {**defaults("frames"), "node": name, "store": "floor", "camera": name,
                     "direction": SENT, "edge": "responder", "codec": "pnc",
                     "model_id": "pnc64"}  # fmt: skip
        self._seq = 0
        self._synced_seq = 0
        self.rows_synced = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._acked: asyncio.Event | None = None
        self.client = gmqtt.Client(f"floor-{name}")
        self.client.on_message = self._on_message

    # -- the worker threads ------------------------------------------------------------

    def _capture_and_encode(self, frame_id: int) -> tuple[bytes, float]:
        started = time.thread_time()
        image = self.source.frame(frame_id).image
        data = b"".join(self.codec.encode_stream(image))
        return data, time.thread_time() - started

    def _record(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            # The local store's own statements: a frame's row, then its open mark's close.
            connection.execute(INSERTS["frames"], [row])
            closed = {"closed_incarnation": 0, "closed_frame_id": row["frame_id"]}
            connection.execute(CLOSE_FRAMES, [closed])

    # -- the bus -----------------------------------------------------------------------

    def _on_message(self, client: object, topic: str, payload: bytes, qos: int,
                    properties: object) -> int:  # fmt: skip
        if topic.endswith("/outcome"):
            (frame_id,) = struct.unpack_from("!Q", payload)
            waiting = self._waiting.pop(frame_id, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
        elif self._acked is not None:
            self._acked.set()
        return 0

    async def start(self, host: str, port: int) -> None:
        await self.client.connect(host, port, version=MQTTv50)
        topics = (frame_topic(self.name, "outcome"), frame_topic(self.name, "ack"))
        self.client.subscribe([gmqtt.Subscription(topic, qos=1) for topic in topics])
        self._acked = asyncio.Event()
        await asyncio.sleep(0.2)  # the subscriptions are in place

    async def stop(self) -> None:
        await self.client.disconnect()
        self._capture.shutdown()
        self._store.shutdown()
        self.engine.dispose()

    # -- per frame ---------------------------------------------------------------------

    async def frame(self, frame_id: int) -> float:
        """One frame, captured to recorded; returns its capture-and-encode CPU seconds."""
        loop = asyncio.get_running_loop()
        capture_ts = time.time()
        data, codec_s = await loop.run_in_executor(self._capture, self._capture_and_encode,
                                                   frame_id)  # fmt: skip
        answered = loop.create_future()
        self._waiting[frame_id] = answered
        # The frame and its end marker in one message, as a camera sends a 64 px frame.
        marker = struct.pack("!Q", frame_id).ljust(MARKER_BYTES, b"\0") + data
        self.client.publish(frame_topic(self.name, f"end/{frame_id}"), marker, qos=1)
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            await answered
        self._seq += 1
        row = {**self._row, "seq": self._seq, "ts": time.time(), "frame_id": frame_id,
               "capture_ts": capture_ts, "deadline_ts": capture_ts + self.period_s,
               "bytes_sent": len(data), "deadline_met": True}  # fmt: skip
        await loop.run_in_executor(self._store, self._record, row)
        return codec_s

    async def sync(self) -> None:
        """The rows recorded since the last sync, at QoS 1, until the responder acks."""
        assert self._acked is not None
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._store, frame_rows_after, self.engine,
                                          self._synced_seq)  # fmt: skip
        if not rows:
            return
        self._acked.clear()
        self.client.publish(frame_topic(self.name, "sync"), msgpack.packb(rows), qos=1)
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            await self._acked.wait()
        self._synced_seq = rows[-1]["seq"]
        self.rows_synced += len(rows)

    async def run(self, warmup_s: float, duration_s: float) -> FloorReport:
        """Frames one period apart; the window is the frames due in [warmup, warmup +
        duration), and the process CPU from the first's due time to the end of the last."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        window = (started + warmup_s, started + warmup_s + duration_s)
        next_sync = started + self.sync_interval_s
        frames, codec_s, cpu_start = 0, 0.0, 0.0
        frame_id = 0
        while (due := started + frame_id * self.period_s) < window[1]:
            await asyncio.sleep(max(0.0, due - loop.time()))
            in_window = due >= window[0]
            if in_window and frames == 0:
                cpu_start = time.process_time()
            spent = await self.frame(frame_id)
            if loop.time() >= next_sync:
                await self.sync()
                next_sync += self.sync_interval_s
            if in_window:
                frames += 1
                codec_s += spent
            frame_id += 1
        return FloorReport(frames, time.process_time() - cpu_start, codec_s, self.rows_synced)


class Responder:
    """Answers every floor camera's end marker with an outcome and every sync with an ack,
    at QoS 1, as the edge and the cloud would; its own CPU is not the camera's."""

    def __init__(self) -> None:
        self.client = gmqtt.Client(f"floor-responder-{time.time_ns()}")
        self.client.on_message = self._on_message

    def _on_message(self, client: object, topic: str, payload: bytes, qos: int,
                    properties: object) -> int:  # fmt: skip
        _, camera, kind = topic.split("/", 3)[:3]
        if kind == "end":
            outcome = payload[:8].ljust(OUTCOME_BYTES, b"\0")
            self.client.publish(frame_topic(camera, "outcome"), outcome, qos=1)
        elif kind == "sync":
            self.client.publish(frame_topic(camera, "ack"), b"ok", qos=1)
        return 0

    async def serve(self, host: str, port: int) -> None:
        await self.client.connect(host, port, version=MQTTv50)
        topics = (f"{ROOT}/+/end/+", f"{ROOT}/+/sync")
        self.client.subscribe([gmqtt.Subscription(topic, qos=1) for topic in topics])
        print("ready", flush=True)
        await asyncio.Event().wait()  # until the benchmark terminates it


async def _camera(args: argparse.Namespace) -> FloorReport:
    camera = FloorCamera(args.name, args.db, args.period_ms / 1000, args.sync_interval)
    await camera.start(args.host, args.port)
    try:
        return await camera.run(args.warmup, args.duration)
    finally:
        await camera.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    camera = roles.add_parser("camera")
    respond = roles.add_parser("respond")
    for role in (camera, respond):
        role.add_argument("host")
        role.add_argument("port", type=int)
    camera.add_argument("name")
    camera.add_argument("db", type=Path)
    camera.add_argument("--period-ms", type=int, default=500)
    camera.add_argument("--warmup", type=float, default=10.0)
    camera.add_argument("--duration", type=float, default=30.0)
    camera.add_argument("--sync-interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.role == "respond":
        asyncio.run(Responder().serve(args.host, args.port))
        return 0
    report = asyncio.run(_camera(args))
    print(json.dumps(asdict(report)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
