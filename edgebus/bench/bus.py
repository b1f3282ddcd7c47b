"""`edgebus bench bus`: msg/s and end-to-end latency of each MQTT client behind the Bus.

Publisher and subscriber run in separate processes (the machine has two cores), against
one broker. Every payload starts with its send time (``time.time_ns()``, 19 ASCII
digits) so the subscriber computes latency from the same system clock. The C clients
(mosquitto_pub -l / mosquitto_sub -F) are the reference row, driven the same way.
Latency is measured under saturation: it includes the queueing of a publisher that
sends as fast as it can.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection as Pipe

import numpy as np

from edgebus.broker.address import parse_broker_url

STAMP = 19  # digits of time.time_ns()
C_CLIENT = "mosquitto-c"


@dataclass(frozen=True, slots=True)
class Cell:
    client: str
    size: int
    qos: int
    count: int


@dataclass(slots=True)
class CellResult:
    client: str
    size: int
    qos: int
    sent: int
    received: int
    seconds: float
    msg_per_s: float
    p50_ms: float
    p99_ms: float


def payload_for(size: int) -> tuple[bytes, int]:
    if size < STAMP + 1:
        raise ValueError(f"payload size must be at least {STAMP + 1} bytes, got {size}")
    return b"x" * (size - STAMP), size


def _summarise(cell: Cell, first_sent_ns: int, received: list[tuple[int, int]]) -> CellResult:
    if not received:
        return CellResult(
            cell.client, cell.size, cell.qos, cell.count, 0, 0.0, 0.0, float("nan"), float("nan")
        )
    recv_ns = np.array([r for r, _ in received], dtype=np.int64)
    sent_ns = np.array([s for _, s in received], dtype=np.int64)
    seconds = max(1e-9, (int(recv_ns.max()) - first_sent_ns) / 1e9)
    latency_ms = (recv_ns - sent_ns) / 1e6
    return CellResult(
        cell.client,
        cell.size,
        cell.qos,
        cell.count,
        len(received),
        seconds,
        len(received) / seconds,
        float(np.percentile(latency_ms, 50)),
        float(np.percentile(latency_ms, 99)),
    )


# -- python clients behind the Bus ---------------------------------------------------


def _bus(url: str, client: str, node: str):
    from edgebus.broker.bus import Bus, BusOptions

    return Bus(
        parse_broker_url(url),
        BusOptions(node_id=node, client=client, max_inflight=1024, subscription_queue=1_000_000),
    )


def _subscriber_process(cell: Cell, url: str, topic: str, pipe: Pipe, idle_s: float) -> None:
    async def run() -> list[tuple[int, int]]:
        bus = _bus(url, cell.client, f"bench-sub-{cell.client}")
        await bus.start(timeout=10)
        subscription = await bus.subscribe(topic, qos=cell.qos, raw=True)
        pipe.send("ready")
        received: list[tuple[int, int]] = []

        async def watchdog() -> None:
            # Ends the run when the stream stalls (QoS 0 may lose messages); cheaper than
            # a timeout per message.
            seen = -1
            while seen != len(received):
                seen = len(received)
                await asyncio.sleep(idle_s)
            await subscription.close()

        guard = asyncio.create_task(watchdog())
        async for delivery in subscription:
            received.append((time.time_ns(), int(delivery.payload[:STAMP])))
            if len(received) >= cell.count:
                break
        guard.cancel()
        await bus.close(flush_timeout=0)
        return received

    pipe.send(asyncio.run(run()))


def _publisher_process(cell: Cell, url: str, topic: str, pipe: Pipe) -> None:
    async def run() -> int:
        bus = _bus(url, cell.client, f"bench-pub-{cell.client}")
        await bus.start(timeout=10)
        filler, _ = payload_for(cell.size)
        pipe.send("ready")
        pipe.recv()
        first = time.time_ns()
        for _ in range(cell.count):
            await bus.publish(topic, b"%019d" % time.time_ns() + filler, qos=cell.qos)
        await bus.close(flush_timeout=60)
        return first

    pipe.send(asyncio.run(run()))


def _run_python_cell(cell: Cell, url: str, topic: str, idle_s: float) -> CellResult:
    context = mp.get_context("spawn")
    sub_end, sub_child = context.Pipe()
    pub_end, pub_child = context.Pipe()
    subscriber = context.Process(
        target=_subscriber_process, args=(cell, url, topic, sub_child, idle_s)
    )
    publisher = context.Process(target=_publisher_process, args=(cell, url, topic, pub_child))
    subscriber.start()
    publisher.start()
    try:
        for end, what in ((sub_end, "subscriber"), (pub_end, "publisher")):
            if not end.poll(30):
                raise RuntimeError(f"{cell.client} {what} did not start within 30 s")
            end.recv()
        pub_end.send("go")
        first_sent = pub_end.recv() if pub_end.poll(600) else time.time_ns()
        received = sub_end.recv() if sub_end.poll(600) else []
    finally:
        for process in (publisher, subscriber):
            process.join(10)
            if process.is_alive():
                process.kill()
    return _summarise(cell, first_sent, received)


# -- the C reference clients --------------------------------------------------------


def _run_c_cell(cell: Cell, url: str, topic: str, idle_s: float) -> CellResult:
    address = parse_broker_url(url)
    common = ["-h", address.host, "-p", str(address.port), "-t", topic, "-q", str(cell.qos)]
    subscriber = subprocess.Popen(
        [
            "mosquitto_sub",
            *common,
            "-C",
            str(cell.count),
            "-F",
            "%U %p",
            "-W",
            str(int(idle_s + 60)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # mosquitto_sub has no ready signal; its SUBSCRIBE takes well under this
    publisher = subprocess.Popen(
        ["mosquitto_pub", *common, "-l"], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    filler, _ = payload_for(cell.size)
    # Like the Python publisher, which is connected before the clock starts: mosquitto_pub
    # connects first and then blocks reading stdin.
    time.sleep(0.3)
    first_sent = time.time_ns()
    assert publisher.stdin is not None
    batch = 64
    for start in range(0, cell.count, batch):
        stamp = b"%019d" % time.time_ns()
        lines = (stamp + filler + b"\n") * min(batch, cell.count - start)
        publisher.stdin.write(lines)
    publisher.stdin.close()
    publisher.wait(600)
    try:
        output, _ = subscriber.communicate(timeout=idle_s + 30)
    except subprocess.TimeoutExpired:
        subscriber.kill()
        output, _ = subscriber.communicate()
    received = []
    for line in output.splitlines():
        stamp, _, payload = line.partition(b" ")
        seconds, _, nanos = stamp.partition(b".")
        received.append(
            (int(seconds) * 1_000_000_000 + int(nanos.ljust(9, b"0")[:9]), int(payload[:STAMP]))
        )
    return _summarise(cell, first_sent, received)


def c_clients_available() -> bool:
    return shutil.which("mosquitto_pub") is not None and shutil.which("mosquitto_sub") is not None


def run_cell(cell: Cell, url: str, idle_s: float = 5.0) -> CellResult:
    topic = f"bench/{cell.client}/{cell.size}/{cell.qos}/{time.time_ns()}"
    if cell.client == C_CLIENT:
        return _run_c_cell(cell, url, topic, idle_s)
    return _run_python_cell(cell, url, topic, idle_s)


def run_benchmark(
    url: str,
    clients: list[str],
    sizes: list[int],
    qos_levels: list[int],
    counts: dict[int, int],
    repeats: int,
    progress: Callable[[Cell], None] | None = None,
) -> list[CellResult]:
    """Median over `repeats` of each cell; clients interleaved so noise hits all alike."""
    runs: dict[tuple[str, int, int], list[CellResult]] = {}
    for _ in range(repeats):
        for size in sizes:
            for qos in qos_levels:
                for client in clients:
                    cell = Cell(client, size, qos, counts[size])
                    if progress is not None:
                        progress(cell)
                    runs.setdefault((client, size, qos), []).append(run_cell(cell, url))
    results = []
    for results_of_cell in runs.values():
        median = statistics.median(r.msg_per_s for r in results_of_cell)
        best = min(results_of_cell, key=lambda r: abs(r.msg_per_s - median))
        results.append(best)
    return results


def ratios_to_reference(results: list[CellResult]) -> dict[tuple[str, int, int], float]:
    reference = {(r.size, r.qos): r.msg_per_s for r in results if r.client == C_CLIENT}
    return {
        (r.client, r.size, r.qos): r.msg_per_s / reference[(r.size, r.qos)]
        for r in results
        if reference.get((r.size, r.qos))
    }


def as_rows(results: list[CellResult]) -> list[dict[str, object]]:
    ratios = ratios_to_reference(results)
    rows = []
    for result in results:
        row = asdict(result)
        row["ratio_to_c"] = ratios.get((result.client, result.size, result.qos), float("nan"))
        rows.append(row)
    return rows
