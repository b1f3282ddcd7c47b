"""The real-time run of the over-the-bus offloading experiment: the cameras of one period
and an edge node over a broker (the embedded one in a child process unless one is given),
every period in groups of cameras, scored into per-cell summaries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence

from edgebus.actor.lifecycle import bus_for
from edgebus.aio import failure
from edgebus.broker.ports import free_port, wait_for_port
from edgebus.config import Settings
from edgebus.experiments.offload_options import test_source
from edgebus.experiments.offload_scoring import Cell, CellSummary, FrameRecord, summarise
from edgebus.messages import Result
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.edge import EdgeNode
from edgebus.nodes.frame_job import SentFrame

Tick = Callable[[float], None]


async def run_period(
    base: Settings,
    cells: list[Cell],
    frames: int,
    tick: Tick,
    external_edge: bool = False,
) -> tuple[list[FrameRecord], dict[Cell, float], int]:
    """Run cells of one period at once; returns the frames, each camera's throughput
    error and the edge's late-chunk count (-1 with an external edge, already listening)."""
    period = cells[0].period_ms
    settings = dataclasses.replace(base, frame_period_ms=period, store_enabled=False)
    edge = (
        None
        if external_edge
        else EdgeNode(dataclasses.replace(settings, role="edge", node_id=f"edge-t{period}"))
    )
    observer = bus_for(dataclasses.replace(settings, node_id=f"observer-t{period}"))
    results: dict[tuple[str, int], list[Result]] = {}
    sent: dict[str, list[SentFrame]] = {cell.camera_id: [] for cell in cells}
    await observer.start(timeout=10)
    subscription = await observer.subscribe(observer.topics.results(), qos=1)

    async def collect() -> None:
        async for delivery in subscription:
            message = delivery.message
            if isinstance(message, Result):
                results.setdefault((message.camera, message.frame_id), []).append(message)

    def on_sent(frame: SentFrame) -> None:
        sent[frame.camera].append(frame)
        tick(1.0)

    collector = asyncio.create_task(collect())
    edge_task = asyncio.create_task(edge.run(connect_timeout=10)) if edge is not None else None
    if edge is not None:
        await edge.ready.wait()
    # Built off the loop: a camera loads its encoder's runtime session, and the edge is
    # already taking frames on this loop.
    cameras = await asyncio.to_thread(
        lambda: [
            CameraNode(
                dataclasses.replace(
                    settings,
                    role="camera",
                    node_id=cell.camera_id,
                    codec=cell.codec,
                    link=cell.scenario,
                    chunk_bytes=cell.chunk_bytes,
                ),
                max_frames=frames,
                source=test_source(settings),
                on_sent=on_sent,
            )
            for cell in cells
        ]
    )
    tasks = [asyncio.create_task(camera.run(connect_timeout=10)) for camera in cameras]
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + frames * period / 1000 + 30
        while loop.time() < until and any(len(v) < frames for v in sent.values()):
            for t in tasks:
                if (failed := failure(t)) is not None:
                    raise failed
            await asyncio.sleep(0.2)
        # Results follow the last end marker by a decode; the grace covers lost markers.
        until = loop.time() + 2 * period / 1000 + 2
        total = sum(len(v) for v in sent.values())
        while loop.time() < until and len(results) < total:
            await asyncio.sleep(0.05)
    finally:
        for camera in cameras:
            camera.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        if edge is not None and edge_task is not None:
            edge.stop()
            await asyncio.gather(edge_task, return_exceptions=True)
        collector.cancel()
        await observer.close(flush_timeout=0)
    records = []
    errors: dict[Cell, float] = {}
    for cell, camera in zip(cells, cameras, strict=True):
        errors[cell] = camera.link.throughput_error() if camera.link is not None else 0.0
        for frame in sent[cell.camera_id]:
            got = results.get((cell.camera_id, frame.frame_id), [])
            records.append(FrameRecord(cell, frame, got[0] if got else None, len(got)))
    return records, errors, int(edge.assembler.stats.late) if edge is not None else -1


@contextlib.contextmanager
def embedded_broker_process() -> Iterator[str]:
    """The embedded (amqtt) broker in a child process: it routes every chunk in Python, and
    on the experiment's own event loop it would steal the time the cameras' deadlines need."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "edgebus", "broker", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=20)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


async def run_offload(
    base: Settings,
    codecs: Sequence[str],
    periods: Sequence[int],
    scenarios: Sequence[str],
    chunk_sizes: Sequence[int],
    frames: int,
    broker: str | None,
    tick: Tick,
    at_once: int = 10,
) -> tuple[list[CellSummary], list[FrameRecord]]:
    records: list[FrameRecord] = []
    errors: dict[Cell, float] = {}
    late: dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        if broker is None:
            url = stack.enter_context(embedded_broker_process())
            base = dataclasses.replace(base, broker=url, protocol="3.1.1")
        else:
            base = dataclasses.replace(base, broker=broker)
        for period in periods:
            cells = [
                Cell(codec, period, scenario, chunk)
                for scenario in scenarios
                for codec in codecs
                for chunk in chunk_sizes
            ]
            for first in range(0, len(cells), at_once):
                group = cells[first : first + at_once]
                got, errs, group_late = await run_period(base, group, frames, tick)
                records += got
                errors.update(errs)
                late[period] = late.get(period, 0) + group_late
    return summarise(records, errors, late), records
