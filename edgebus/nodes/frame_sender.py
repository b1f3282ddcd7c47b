"""A camera's frame sender: encode off the event loop, then send the frame's units most
important first until its deadline, paced by the emulated link, and close it with an
end marker (the PNC paper's device side, Sec. V-G).

- The encoder runs in a worker thread and hands its units to the loop every few
  milliseconds as they are coded, so a large frame's first features go out while the
  rest are still being Huffman coded, and a small frame goes in one message.
- A job may leave the read to the encoder thread too (`EncodeJob.read`, when nothing on
  the loop looks at the frame first): one thread hop per frame instead of two. A read
  that fails ends the job with `FrameReadFailed` before anything of it is published.
- Frame i's deadline is the instant frame i+1 is due. A chunk starts only if the link
  carries it, and the end marker after it, before then; sending also stops as soon as
  frame i+1's first unit is ready (the paper's rule), so a frame's chunks never
  interleave with the next frame's.
- Under a token bucket (`whole_frames`) an offloaded frame is sent whole: the decision
  bought the strong model's answer on the full frame, not on what a deadline lets
  through.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from edgebus.broker.bus import Bus
from edgebus.broker.link import LinkEmulator, mqtt_publish_size
from edgebus.broker.tracing import chunk_properties, traced
from edgebus.clock import Clock
from edgebus.messages import EndOfFrame, FrameChunk, encode
from edgebus.nodes.chunking import Chunk, Chunker, count_chunks
from edgebus.nodes.counters import CameraCounters
from edgebus.nodes.frame_job import EncodeJob, FrameReadFailed, SenderSetup, SendTally, SentFrame
from edgebus.nodes.sources import CapturedFrame
from edgebus.topics import Topics

log = logging.getLogger("edgebus.camera")

# Most bytes of ready units joined into one chunk: a 64 px PNC frame is 1-3 KiB, and a
# 224 px one stays well under the broker's default message limits.
COALESCE_BYTES = 16 * 1024
# The encoder thread hands its units to the loop at most this often. Each hand-over wakes
# the loop and usually becomes a chunk of its own, so a 64 px frame (coded in well under
# a millisecond) now reaches the sender in one hand-over and leaves as one message; a
# large frame's first units still leave a few ms after they are coded.
HAND_OVER_S = 0.002


class FrameSender:
    def __init__(
        self, bus: Bus, topics: Topics, clock: Clock, setup: SenderSetup,
        link_for: Callable[[str], LinkEmulator | None], counters: CameraCounters,
    ) -> None:  # fmt: skip
        self.bus = bus
        self.topics = topics
        self.clock = clock
        self.setup = setup
        # The link a frame crosses, by the edge it was captured for.
        self.link_for = link_for
        self.counters = counters
        self._newest_ready = -1  # newest frame whose first unit is ready
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix=f"{setup.camera}-encode")

    def close(self) -> None:
        """Drop the jobs not started, without waiting (a sender that never reads sources)."""
        self._encoder.shutdown(wait=False, cancel_futures=True)

    async def finish(self) -> None:
        """Drop the jobs not started and wait, off the loop, for the one under way: it may
        be reading the source, which must be over before the source is closed."""
        await asyncio.to_thread(self._encoder.shutdown, wait=True, cancel_futures=True)

    # -- encoding, in the worker thread -----------------------------------------------

    def encode(self, job: EncodeJob) -> None:
        # Not run_in_executor: its future would wake the loop once more per frame only to
        # say the worker finished, which the frame's end (handed over below) already says.
        self._encoder.submit(self._encode_blocking, job, asyncio.get_running_loop())

    def _encode_blocking(self, job: EncodeJob, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: read the frame if the job says so, then hand the coded units to
        the loop in slices of HAND_OVER_S, then the frame's end (always, with the failure if
        the encoder raised)."""
        frame = job.frame
        if job.read is not None:
            try:
                read = job.read(frame.frame_id)
            except Exception as exc:
                self._call_loop(loop, self._read_failed, job, exc)
                return
            frame = dataclasses.replace(frame, image=read.image, label=read.label)
        ready: list[bytes] = []
        sliced_at = time.monotonic()
        failure: Exception | None = None
        try:
            for unit in job.coding.units(frame.image):
                ready.append(unit)
                if time.monotonic() - sliced_at >= HAND_OVER_S:
                    self._call_loop(loop, self._units_ready, job, frame, ready, False, None)
                    ready, sliced_at = [], time.monotonic()
        except Exception as exc:
            failure = exc
        finally:
            self._call_loop(loop, self._units_ready, job, frame, ready, True, failure)

    @staticmethod
    def _call_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., None],
                   *args: object) -> None:  # fmt: skip
        # A camera stopping mid-frame may have closed its loop already: nothing waits then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    def _units_ready(
        self, job: EncodeJob, frame: CapturedFrame, units: list[bytes], ended: bool,
        failure: Exception | None,
    ) -> None:  # fmt: skip
        job.frame = frame  # the same frame, read now if the encoder thread read it
        if units and job.first_ready_mono is None:
            job.first_ready_mono = self.clock.monotonic()
            self._newest_ready = max(self._newest_ready, job.frame.frame_id)
        for unit in units:
            job.unit_sizes.append(len(unit))
            job.units.put_nowait(unit)
        if failure is not None:
            # The frame still ends, with what was coded; the failure is counted and logged.
            self.counters.encode_errors += 1
            log.error("encoder failed: %s", failure)
        if ended:
            self._end(job)

    def _read_failed(self, job: EncodeJob, error: Exception) -> None:
        job.read_error = error
        self._end(job)

    @staticmethod
    def _end(job: EncodeJob) -> None:
        job.encoded.set()
        job.units.put_nowait(None)

    # -- the end marker ---------------------------------------------------------------

    def end_marker(
        self, job: EncodeJob, chunks_sent: int, payload_bytes: int, units_sent: int
    ) -> EndOfFrame:
        return self._marker(job, chunks_sent, count_chunks(job.unit_sizes, self.setup.block_bytes),
                            payload_bytes, units_sent)  # fmt: skip

    def _marker(
        self, job: EncodeJob, chunks_sent: int, total_chunks: int, payload_bytes: int,
        units_sent: int, last_chunk: bytes = b"",
    ) -> EndOfFrame:  # fmt: skip
        frame, setup = job.frame, self.setup
        return EndOfFrame(
            camera=setup.camera,
            frame_id=frame.frame_id,
            chunks_sent=chunks_sent,
            total_chunks=total_chunks,
            bytes_sent=payload_bytes,
            codec=job.coding.codec,
            model_id=job.coding.model_id,
            capture_ts=frame.capture_ts,
            deadline_ts=frame.deadline_ts,
            width=setup.frame_width,
            height=setup.frame_height,
            units_sent=units_sent,
            label=frame.label,
            edge=job.edge,
            incarnation=setup.incarnation,
            last_chunk=last_chunk,
        )

    def _marker_wire_bytes(self, job: EncodeJob) -> int:
        # The marker's size barely varies; sizing it with generous counts over-reserves by
        # a byte or two at most.
        # The label too: a frame the encoder thread reads has none yet.
        probe = dataclasses.replace(self._marker(job, 0xFFFF, 0xFFFF, 0xFFFFFF, 0xFFFF),
                                    label=0xFFFF)  # fmt: skip
        topic = self.topics.frame_end(self.setup.camera, job.frame.frame_id)
        return mqtt_publish_size(topic, len(encode(probe)), qos=1)

    # -- sending ----------------------------------------------------------------------

    async def _next_unit(self, job: EncodeJob) -> bytes | None:
        """The next unit of the frame, or None at its end or when the deadline comes first."""
        if not job.units.empty():
            return job.units.get_nowait()  # the usual case: the encoder is ahead
        if self.setup.whole_frames:
            return await job.units.get()
        remaining = job.frame.deadline_mono - self.clock.monotonic()
        if remaining <= 0:
            return None
        # asyncio.timeout, not wait_for: wait_for wraps the get in a task of its own.
        try:
            async with asyncio.timeout(remaining):
                return await job.units.get()
        except TimeoutError:
            return None

    @staticmethod
    def _ready_units(job: EncodeJob, first: bytes) -> tuple[list[bytes], bool]:
        """`first` and the units already coded behind it (up to COALESCE_BYTES), and whether
        the frame's end came with them; never waits for a unit not yet coded."""
        units, size, ended = [first], len(first), False
        while size < COALESCE_BYTES and not job.units.empty():
            unit = job.units.get_nowait()
            if unit is None:
                ended = True
                break
            units.append(unit)
            size += len(unit)
        return units, ended

    @staticmethod
    def _pending_chunks(chunker: Chunker, units: list[bytes], ended: bool) -> list[Chunk]:
        chunks = chunker.add_all(units)
        return chunks + chunker.flush() if ended else chunks

    async def send(self, job: EncodeJob) -> tuple[SentFrame, EndOfFrame]:
        """Send one frame until its deadline, then its end marker (QoS 1); returns what
        was sent and the marker, for the camera to follow and record."""
        frame, setup = job.frame, self.setup
        camera, whole = setup.camera, setup.whole_frames
        # A frame goes to the edge it was captured for, over that edge's link, even if the
        # policy moved the camera meanwhile: the edges hand a camera over at a frame boundary.
        link = self.link_for(job.edge)
        marker_wire = self._marker_wire_bytes(job) if link is not None else 0
        chunker = Chunker(setup.block_bytes)
        tally = SendTally()
        link_rate = link.rate_now() if link is not None else 0.0
        stopped = False
        # Without an emulated link nothing paces the chunks, so the units the encoder has
        # already coded go out as one message: the broker and the edge then handle a frame
        # in one or two messages, not one per feature (a chunk still never waits for a
        # unit). A paced link keeps one unit per chunk, so the deadline cuts finely.
        coalesce = link is None and setup.block_bytes == 0
        # Unpaced, the chunk that ends the frame rides in the end marker (QoS 1 anyway):
        # one publish, one broker route and one edge receive fewer per frame, so a 64 px
        # frame is one message. A paced link keeps it apart, as the paper's accounting has.
        last_chunk = b""
        units: list[bytes]
        while not stopped:
            unit = await self._next_unit(job)
            if unit is None:
                units, ended = [], True
            elif coalesce:
                units, ended = self._ready_units(job, unit)
            else:
                units, ended = [unit], False
            pending = self._pending_chunks(chunker, units, ended)
            for index, chunk in enumerate(pending):
                if self._newest_ready > frame.frame_id and not whole:
                    stopped = True  # the next frame's first unit is ready: the deadline
                    break
                if link is None and ended and index == len(pending) - 1:
                    if whole or self.clock.monotonic() < frame.deadline_mono:
                        # Counted now, but out (job.chunks_out) only with the marker.
                        last_chunk = chunk.data
                        tally.sent(chunk)
                    break
                message = FrameChunk(
                    camera=camera,
                    frame_id=frame.frame_id,
                    chunk_index=tally.chunks,
                    codec=job.coding.codec,
                    model_id=job.coding.model_id,
                    capture_ts=frame.capture_ts,
                    data=chunk.data,
                    edge=job.edge,
                    incarnation=setup.incarnation,
                )
                topic = self.topics.frame_chunk(camera, frame.frame_id, tally.chunks)
                payload = encode(message)
                wire = mqtt_publish_size(topic, len(payload))
                if link is not None and whole:
                    await link.transmit(wire)
                elif link is not None:
                    arrival = await link.transmit_before(wire, frame.deadline_mono, marker_wire)
                    if arrival is None:
                        stopped = True  # this chunk and the end marker would miss the deadline
                        break
                    if link.monotonic_of(arrival) > frame.deadline_mono:
                        tally.overruns += 1  # crossed the emulated link after the deadline
                elif not whole and self.clock.monotonic() >= frame.deadline_mono:
                    stopped = True
                    break
                expiry = chunk_properties(frame.deadline_mono - self.clock.monotonic())
                await self.bus.publish(topic, payload, qos=0, properties=expiry)
                tally.sent(chunk)
                job.chunks_out = tally.chunks
                tally.wire_bytes += wire
            if ended:
                break
        if not job.encoded.is_set():
            # Rare: the deadline came before the encoder finished; totals wait for it.
            await job.encoded.wait()
        if job.read_error is not None:
            raise FrameReadFailed(f"frame {frame.frame_id}: {job.read_error}") from job.read_error
        frame = job.frame  # with its label now, if the encoder thread read it
        marker = self._marker(job, tally.chunks, count_chunks(job.unit_sizes, setup.block_bytes),
                              tally.payload_bytes, tally.units, last_chunk)  # fmt: skip
        marker_topic = self.topics.frame_end(camera, frame.frame_id)
        marker_payload = encode(marker)
        if link is not None:
            await link.transmit(marker_wire)
            tally.wire_bytes += marker_wire
        else:
            tally.wire_bytes += mqtt_publish_size(marker_topic, len(marker_payload), qos=1)
        sent = SentFrame(
            camera=camera,
            frame_id=frame.frame_id,
            label=frame.label,
            capture_ts=frame.capture_ts,
            first_unit_s=(
                job.first_ready_mono - frame.capture_mono
                if job.first_ready_mono is not None
                else -1.0
            ),
            units_sent=tally.units,
            units_total=len(job.unit_sizes),
            chunks_sent=tally.chunks,
            payload_bytes=tally.payload_bytes,
            wire_bytes=tally.wire_bytes,
            overruns=tally.overruns,
            link_rate=link_rate,
            model_id=job.coding.model_id,
        )
        trace = traced(camera, setup.incarnation, frame.frame_id)
        await self.bus.publish(marker_topic, marker_payload, qos=1, properties=trace)
        job.chunks_out = tally.chunks
        return sent, marker
