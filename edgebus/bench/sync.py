"""`edgebus bench sync`: rows/s through the real sync path (local store → agent → MQTT →
sink → global store) from 1 and from N nodes, with the p99 sync lag, against a direct
SQLAlchemy bulk insert of the same rows into the same kind of store."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.storage.engine import ensure_schema, make_engine
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.local import LocalStore
from edgebus.storage.models import ResultRow
from edgebus.storage.sink import SyncSink
from edgebus.storage.sync import SyncAgent, SyncOptions


@dataclass(slots=True)
class SyncBenchRow:
    target: str
    nodes: int
    rows: int
    seconds: float
    rows_per_s: float
    p50_lag_ms: float
    p99_lag_ms: float
    direct_rows_per_s: float

    @property
    def ratio(self) -> float:
        return self.rows_per_s / self.direct_rows_per_s if self.direct_rows_per_s else 0.0


def result_row(index: int) -> dict[str, Any]:
    return {
        "camera": f"cam-{index % 4}",
        "frame_id": index,
        "top_k": [index % 10, (index + 3) % 10, (index + 7) % 10],
        "scores": [0.6, 0.3, 0.1],
        "latency_ms": (index % 97) / 3.0,
        "offloaded": index % 2 == 0,
        "deadline_met": index % 5 != 0,
    }


@contextlib.contextmanager
def store_url_for(target: str, postgres_url: str, workdir: Path) -> Iterator[str]:
    """A fresh global store: a new SQLite file, or a new PostgreSQL schema dropped after."""
    if target == "sqlite":
        yield f"sqlite:///{workdir / f'global-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    schema = f"edgebus_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(postgres_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def direct_insert(url: str, nodes: int, rows: int) -> float:
    """rows/s of one SQLAlchemy executemany of the same rows, in one transaction."""
    engine = make_engine(url)
    ensure_schema(engine, url)
    per_node = rows // nodes
    data = [
        {
            **result_row(i),
            "node": f"direct-{n}",
            "store": "direct",
            "seq": i + 1,
            "ts": time.time(),
            "incarnation": 0,
        }
        for n in range(nodes)
        for i in range(per_node)
    ]
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(insert(ResultRow), data)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(data) / elapsed


def _sink_main(broker: str, url: str, site: str, ready: Any, stop: Any) -> None:
    async def main() -> None:
        bus = Bus(parse_broker_url(broker), BusOptions(site=site, node_id="bench-sink"))
        await bus.start(timeout=10)
        sink = SyncSink(bus, GlobalStore(url))
        await sink.start()
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await sink.stop()
        await bus.close(flush_timeout=1)

    asyncio.run(main())


async def _sync_run(broker: str, url: str, nodes: int, rows: int, workdir: Path) -> SyncBenchRow:
    site = f"bench{uuid.uuid4().hex[:6]}"
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    sink = context.Process(target=_sink_main, args=(broker, url, site, ready, stop), daemon=True)
    sink.start()
    loop = asyncio.get_running_loop()
    try:
        if not await loop.run_in_executor(None, ready.wait, 60):
            raise RuntimeError("the benchmark's sync sink did not start within 60 s")
        per_node = rows // nodes
        options = SyncOptions(batch_rows=500, interval_s=0.05, ack_timeout_s=10.0, window=16)
        run = [await _node(broker, site, f"n{i}", workdir, options) for i in range(nodes)]
        commits: list[list[tuple[int, float]]] = [[] for _ in run]
        acks: list[list[tuple[int, float]]] = [[] for _ in run]
        for i, (_bus, store, agent) in enumerate(run):
            store.on_commit.append(_recorder(commits[i]))
            agent.on_ack.append(_ack_recorder(acks[i]))
        started = time.monotonic()
        await asyncio.gather(*(_produce(store, per_node) for _bus, store, _agent in run))
        drained = await asyncio.gather(*(agent.drain(300) for _bus, _store, agent in run))
        seconds = time.monotonic() - started
        total = per_node * nodes
        stored = await loop.run_in_executor(None, _count, url)
        if not all(drained) or stored != total:
            raise RuntimeError(f"sync benchmark stored {stored} of {total} rows")
        for bus, store, agent in run:
            await agent.stop()
            await store.close()
            await bus.close(flush_timeout=1)
        lags = np.concatenate([_lags(c, a) for c, a in zip(commits, acks, strict=True)])
        return SyncBenchRow(
            "", nodes, total, seconds, total / seconds,
            float(np.percentile(lags, 50)), float(np.percentile(lags, 99)), 0.0,
        )  # fmt: skip
    finally:
        stop.set()
        await loop.run_in_executor(None, sink.join, 20)
        if sink.is_alive():
            sink.kill()


def _count(url: str) -> int:
    store = GlobalStore(url)
    try:
        store.open()
        return store.count("results")
    finally:
        store.close()


def _ack_recorder(out: list[tuple[int, float]]) -> Callable[[int, float], None]:
    def record(seq: int, acked_at: float) -> None:
        out.append((seq, acked_at))

    return record


def _recorder(out: list[tuple[int, float]]) -> Callable[[int], None]:
    return lambda seq: out.append((seq, time.monotonic()))


async def _node(
    broker: str, site: str, node: str, workdir: Path, options: SyncOptions
) -> tuple[Bus, LocalStore, SyncAgent]:
    bus = Bus(parse_broker_url(broker), BusOptions(site=site, node_id=f"{site}-{node}"))
    await bus.start(timeout=10)
    store = LocalStore(workdir / f"{site}-{node}.sqlite3", node, flush_rows=500)
    await store.start()
    agent = SyncAgent(bus, store, options)
    await agent.start()
    return bus, store, agent


async def _produce(store: LocalStore, rows: int) -> None:
    for index in range(rows):
        store.add("results", **result_row(index))
        if index % 500 == 499:
            await asyncio.sleep(0)


def _lags(commits: list[tuple[int, float]], acks: list[tuple[int, float]]) -> np.ndarray:
    """Per row: from the commit that wrote it locally to the ack that covered it, in ms."""
    if not commits or not acks:
        return np.zeros(0)
    ack_seq = np.array([s for s, _ in acks])
    ack_t = np.array([t for _, t in acks])
    lags, previous = [], 0
    for seq, t in commits:
        index = int(np.searchsorted(ack_seq, seq))
        if index < len(ack_seq):
            lags.append(np.full(seq - previous, (ack_t[index] - t) * 1000.0))
        previous = seq
    return np.concatenate(lags) if lags else np.zeros(0)


def run_sync_bench(
    broker: str,
    targets: list[str],
    node_counts: list[int],
    rows: int,
    postgres_url: str,
    progress: Callable[[str], None] = lambda _: None,
) -> list[SyncBenchRow]:
    results = []
    with tempfile.TemporaryDirectory(prefix="edgebus-bench-sync-") as tmp:
        workdir = Path(tmp)
        for target in targets:
            for nodes in node_counts:
                progress(f"{target}, {nodes} node(s): bus path")
                with store_url_for(target, postgres_url, workdir) as url:
                    row = asyncio.run(_sync_run(broker, url, nodes, rows, workdir))
                progress(f"{target}, {nodes} node(s): direct bulk insert")
                with store_url_for(target, postgres_url, workdir) as url:
                    row.direct_rows_per_s = direct_insert(url, nodes, rows)
                row.target = target
                results.append(row)
    return results


def check_postgres(url: str) -> None:
    """Fail early, in one line, when the PostgreSQL target is unreachable."""
    from edgebus.storage.engine import safe_url
    from edgebus.storage.errors import GlobalStoreError, first_line

    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise GlobalStoreError(
            f"PostgreSQL {safe_url(url)!r} is unreachable ({first_line(exc)}); "
            "start it or leave postgresql out of --targets"
        ) from None
    finally:
        engine.dispose()


def write_csv(path: Path, rows: list[SyncBenchRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in dataclasses.fields(SyncBenchRow)] + ["ratio"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in rows:
            writer.writerow([*dataclasses.astuple(row), f"{row.ratio:.3f}"])
