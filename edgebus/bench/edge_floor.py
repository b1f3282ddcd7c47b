"""The least CPU an edge's libraries need per frame: gmqtt, msgpack, the edge's own models
and SQLAlchemy doing only what a frame needs, with none of edgebus's node code around
them. What a real edge spends beyond this floor under the same replay is edgebus's own.

python -m edgebus.bench.edge_floor HOST PORT DB [--site lab] [--size 64]
    [--sync-interval 10]

Per frame, the floor edge
- takes the frame's messages from the replay's frame topics at QoS 1, as an edge
  subscribes: the payload unpacked by msgpack straight into the message's fields, with
  none of the checks the bus makes (a 64 px frame is one message, its end marker with
  the frame's one chunk in it);
- decides the frames on one worker thread, whatever piled up while the last batch ran
  in one call: the edge's own decode and classify (`FrameClassifier.classify_batch`,
  the same call and models the replay benchmark times as the models' own), then one
  SQLAlchemy Core transaction with each frame's `frames` and `results` rows, through the
  local store's own insert statements;
- publishes a result and an outcome per frame at QoS 1 (msgpack, the fields a camera
  and a tool need);
- and every sync interval publishes the rows recorded since the last sync at QoS 1
  (nothing answers them: a sync ack is one small message per interval).

It prints `ready` once subscribed and runs until terminated. Its store has the product's
tables, so the replay benchmark reads its outcomes as it reads a real edge's
(`FloorEdgeProcess` runs it for a replay step, as `EdgeUnderTest` runs the real edge).
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import gmqtt
import msgpack
import psutil
from gmqtt.mqtt.constants import MQTTv50
from sqlalchemy import Engine

from edgebus.bench.camera_floor import frame_rows_after
from edgebus.bench.process_fleet import wait_for
from edgebus.bench.processes import terminate
from edgebus.bench.replay_edge import process_cpu_s, threads_cpu_s
from edgebus.broker.address import parse_broker_url
from edgebus.codecs.classifier import Classifier
from edgebus.message_wire import HEADER_SIZE
from edgebus.messages import EndOfFrame, FrameChunk
from edgebus.nodes.assembler import PendingFrame
from edgebus.nodes.decoding import Classified, FrameClassifier
from edgebus.storage.engine import ensure_schema, make_engine
from edgebus.storage.local_writes import INSERTS
from edgebus.storage.models import DROPPED, RECEIVED, defaults
from edgebus.topics import Topics

NODE = "edge-floor"
FLOOR = (sys.executable, "-m", "edgebus.bench.edge_floor")
ROOT = "edgebus-floor/edge"  # where it answers: nothing of the product listens there
FrameKey = tuple[str, int, int]


class FloorEdge:
    """One edge's per-frame work with only the libraries: see the module docstring."""

    def __init__(self, db: Path, site: str, size: int, sync_interval_s: float) -> None:
        self.topics = Topics(site)
        self.sync_interval_s = sync_interval_s
        self.frames = FrameClassifier(Classifier("strong"), size)
        self.engine: Engine = make_engine(f"sqlite:///{db}")
        ensure_schema(self.engine, str(db))
        self._row = {"node": NODE, "store": "floor"}
        self._frame_row = {**defaults("frames"), **self._row, "direction": RECEIVED,
                           "edge": NODE}  # fmt: skip
        self._result_row = {**defaults("results"), **self._row, "offloaded": True}
        self._seq = 0
        self._synced_seq = 0
        # Frames still in chunks (a frame larger than one message), by key.
        self._parts: dict[FrameKey, dict[int, bytes]] = {}
        # Frames for the worker thread, which sleeps on this queue while none waits.
        self._queue: queue.SimpleQueue[PendingFrame] = queue.SimpleQueue()
        self.client = gmqtt.Client(f"{NODE}-{time.time_ns()}")
        self.client.on_message = self._on_message

    # -- the bus, on the loop ----------------------------------------------------------

    def _on_message(self, client: object, topic: str, payload: bytes, qos: int,
                    properties: object) -> int:  # fmt: skip
        fields = msgpack.unpackb(payload[HEADER_SIZE:])
        if payload[2] == FrameChunk.TYPE_CODE:
            chunk = FrameChunk(*fields)
            key = (chunk.camera, chunk.incarnation, chunk.frame_id)
            self._parts.setdefault(key, {})[chunk.chunk_index] = chunk.data
            return 0
        marker = EndOfFrame(*fields)
        key = (marker.camera, marker.incarnation, marker.frame_id)
        chunks = self._parts.pop(key, {})
        if marker.last_chunk:
            chunks[marker.chunks_sent - 1] = marker.last_chunk
        frame = PendingFrame(marker.camera, marker.frame_id, time.monotonic(),
                             marker.incarnation, marker.codec, marker.model_id,
                             marker.capture_ts, chunks, marker)  # fmt: skip
        self._queue.put(frame)
        return 0

    def _answer(self, answered: list[tuple[PendingFrame, Classified | str]]) -> None:
        for frame, verdict in answered:
            top_k = verdict.top_k if isinstance(verdict, Classified) else []
            result = msgpack.packb([frame.camera, frame.incarnation, frame.frame_id, top_k])
            self.client.publish(f"{ROOT}/results", result, qos=1)
            outcome = msgpack.packb([frame.camera, frame.incarnation, frame.frame_id, "result"])
            self.client.publish(f"{ROOT}/outcome/{frame.camera}", outcome, qos=1)

    # -- deciding, on the worker thread ------------------------------------------------

    def _decide(self, loop: asyncio.AbstractEventLoop, failed: asyncio.Future[None]) -> None:
        """Whatever piled up, in one classify call and one transaction; forever, or until
        one fails, which then ends the process with the error."""
        try:
            while True:
                batch = [self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                verdicts = self.frames.classify_batch(batch)
                self._record(batch, verdicts, time.time())
                loop.call_soon_threadsafe(self._answer, list(zip(batch, verdicts, strict=True)))
        except Exception as exc:
            loop.call_soon_threadsafe(failed.set_exception, exc)

    def _record(self, batch: list[PendingFrame], verdicts: list[Classified | str],
                now: float) -> None:  # fmt: skip
        frames, results = [], []
        for frame, verdict in zip(batch, verdicts, strict=True):
            key = {"camera": frame.camera, "incarnation": frame.incarnation,
                   "frame_id": frame.frame_id, "ts": now}  # fmt: skip
            self._seq += 1
            end = frame.end
            assert end is not None  # a frame is queued at its end marker
            frames.append({**self._frame_row, **key, "seq": self._seq,
                           "capture_ts": frame.capture_ts, "deadline_ts": end.deadline_ts,
                           "codec": frame.codec, "model_id": frame.model_id,
                           "bytes_sent": end.bytes_sent, "bytes_received": frame.bytes_received,
                           "deadline_met": True})  # fmt: skip
            if isinstance(verdict, str):  # undecodable: dropped, with the reason
                frames[-1].update(direction=DROPPED, reason=verdict[:256], deadline_met=False)
            else:
                frames[-1]["features_received"] = verdict.units_used
                self._seq += 1
                latency_ms = (now - frame.capture_ts) * 1000.0
                results.append({**self._result_row, **key, "seq": self._seq,
                                "top_k": verdict.top_k, "scores": verdict.scores,
                                "latency_ms": latency_ms, "deadline_met": True})  # fmt: skip
        with self.engine.begin() as connection:
            connection.execute(INSERTS["frames"], frames)
            if results:
                connection.execute(INSERTS["results"], results)

    # -- running -----------------------------------------------------------------------

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()
        worker = threading.Thread(target=self._decide, args=(loop, failed), name="floor-decide",
                                  daemon=True)  # fmt: skip
        worker.start()
        await self.client.connect(host, port, version=MQTTv50)
        self.client.subscribe(gmqtt.Subscription(self.topics.frames(), qos=1))
        await asyncio.sleep(0.2)  # the subscription is in place
        print("ready", flush=True)
        while True:  # until the benchmark terminates it
            done, _ = await asyncio.wait({failed}, timeout=self.sync_interval_s)
            if done:
                failed.result()  # the worker's error, raised here
            rows = await asyncio.to_thread(frame_rows_after, self.engine, self._synced_seq)
            if rows:
                self.client.publish(f"{ROOT}/sync", msgpack.packb(rows), qos=1)
                self._synced_seq = rows[-1]["seq"]


class FloorEdgeProcess:
    """The floor edge as a process of its own on `broker_url`, its store under data_dir."""

    def __init__(
        self, broker_url: str, data_dir: Path, site: str = "lab", cli: tuple[str, ...] = FLOOR
    ) -> None:
        self.cli = cli  # how the floor edge runs: under a profiler (`--module`), say
        self.address = parse_broker_url(broker_url)
        self.site = site
        self.store = data_dir / f"{NODE}.sqlite3"
        self.log_path = data_dir / f"{NODE}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.process: psutil.Process | None = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    async def start(self, timeout_s: float = 60.0) -> None:
        command = [*self.cli, self.address.host, str(self.address.port), str(self.store),
                   "--site", self.site]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.process = psutil.Process(self.popen.pid)
        await wait_for(lambda: "ready" in self.log_text() or not self.running(), timeout_s,
                       "the floor edge to subscribe")  # fmt: skip
        if not self.running():
            raise RuntimeError(f"the floor edge exited:\n{self.log_text()[-2000:]}")

    def cpu_s(self) -> float:
        return process_cpu_s(self.process)

    def thread_cpu_s(self) -> dict[int, float]:
        return threads_cpu_s(self.process)

    def stop(self) -> None:
        terminate(self.popen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("db", type=Path)
    parser.add_argument("--site", default="lab")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sync-interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    edge = FloorEdge(args.db, args.site, args.size, args.sync_interval)
    asyncio.run(edge.serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
