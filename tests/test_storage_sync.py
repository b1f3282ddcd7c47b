"""The sync agent and sink in one process over the embedded broker."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from edgebus.bench.process_fleet import wait_for
from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions, RequestFailed
from edgebus.messages import StoreQuery, StoreRows
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.local import LocalStore
from edgebus.storage.sink import SyncSink
from edgebus.storage.sync import QUERY_SERVICE, SyncAgent, SyncOptions

FAST = SyncOptions(batch_rows=50, interval_s=0.05, ack_timeout_s=0.5, window=4)


def bus(url: str, node: str) -> Bus:
    return Bus(parse_broker_url(url), BusOptions(node_id=node, protocol="3.1.1"))


def add_events(store: LocalStore, count: int, ts: float | None = None) -> None:
    for i in range(count):
        store.add("events", kind="policy_change", detail={"i": i}, **({"ts": ts} if ts else {}))


async def test_agent_resends_until_a_late_sink_acks(actor_broker_url, tmp_path):
    node_bus, cloud_bus = bus(actor_broker_url, "n1"), bus(actor_broker_url, "cloud")
    await node_bus.start(5)
    await cloud_bus.start(5)
    store = LocalStore(tmp_path / "n1.sqlite3", "n1")
    await store.start()
    agent = SyncAgent(node_bus, store, FAST)
    await agent.start()
    add_events(store, 120)
    await store.flush()
    # Batches go out to nobody. Waited for, not slept on: a worker starved on a loaded
    # machine once took longer than a fixed 0.3 s; a sender that never woke still fails.
    await wait_for(lambda: agent.stats.batches_sent >= 1, 10, "a first batch")
    assert store.acked_seq == 0 and agent.stats.batches_sent >= 1
    global_store = GlobalStore(f"sqlite:///{tmp_path / 'global.sqlite3'}")
    sink = SyncSink(cloud_bus, global_store)
    await sink.start()
    assert await agent.drain(10)
    assert agent.stats.resends >= 1 and store.acked_seq == 120
    assert global_store.count("events", ["n1"]) == 120
    await agent.stop()
    await store.close()
    await sink.stop()
    await node_bus.close()
    await cloud_bus.close()


async def test_restart_resumes_after_the_last_ack(actor_broker_url, tmp_path):
    cloud_bus = bus(actor_broker_url, "cloud")
    await cloud_bus.start(5)
    sink = SyncSink(cloud_bus, GlobalStore(f"sqlite:///{tmp_path / 'global.sqlite3'}"))
    await sink.start()
    for round_rows in (100, 30):
        node_bus = bus(actor_broker_url, "n1")
        await node_bus.start(5)
        store = LocalStore(tmp_path / "n1.sqlite3", "n1")
        await store.start()
        agent = SyncAgent(node_bus, store, FAST)
        await agent.start()
        add_events(store, round_rows)
        assert await agent.drain(10)
        assert agent.stats.rows_sent == round_rows  # nothing acked is sent again
        await agent.stop()
        await store.close()
        await node_bus.close()
    assert sink.store.count("events", ["n1"]) == 130 and sink.stats.batches_rejected == 0
    await sink.stop()
    await cloud_bus.close()


async def test_unsynced_rows_on_request_and_retention(actor_broker_url, tmp_path):
    node_bus, asker = bus(actor_broker_url, "n1"), bus(actor_broker_url, "asker")
    await node_bus.start(5)
    await asker.start(5)
    store = LocalStore(tmp_path / "n1.sqlite3", "n1")
    await store.start()
    options = SyncOptions(interval_s=3600, retention_days=1.0, retention_interval_s=0.1)
    agent = SyncAgent(node_bus, store, options)
    add_events(store, 5, ts=1000.0)  # long past the retention age
    add_events(store, 3)
    await store.flush()
    await agent.start()
    topic = asker.topics.request("n1", QUERY_SERVICE)
    reply = await asker.request(topic, StoreQuery("events", since_ts=2000.0), timeout=5)
    assert isinstance(reply, StoreRows) and [r["seq"] for r in reply.rows] == [6, 7, 8]
    with pytest.raises(RequestFailed, match="unknown table 'nope'"):
        await asker.request(topic, StoreQuery("nope"), timeout=5)
    await asyncio.sleep(0.3)
    assert store.stats.rows_pruned == 0  # old but not synced: kept
    await store.mark_synced(8)
    await asyncio.sleep(0.3)
    assert store.stats.rows_pruned == 5
    assert [r["seq"] for r in store.all_rows("events")] == [6, 7, 8]
    await agent.stop()
    await store.close()
    await node_bus.close()
    await asker.close()


def test_a_commit_wakes_the_sender_only_when_it_changes_what_the_sender_does():
    """Every commit of a busy node used to wake the sender; now only one that makes rows
    wait where none did, fills a batch, or finds the interval over does."""
    store = SimpleNamespace(node="n1", last_seq=0, acked_seq=0, on_commit=[])
    agent = SyncAgent(None, store, SyncOptions(batch_rows=50, interval_s=10.0))  # type: ignore[arg-type]
    agent._last_send = time.monotonic()

    def commit(seq: int) -> bool:
        store.last_seq = seq
        agent._wake.clear()
        agent._committed(seq)
        return agent._wake.is_set()

    assert commit(1)  # rows wait now: the sender sleeps until the interval's end instead
    assert not commit(2) and not commit(49)
    assert commit(60)  # a full batch goes at once
    agent.sent_upto = 60
    assert commit(61)
    assert not commit(62)
    agent._last_send -= 11.0
    assert commit(63)  # the interval is over


def test_the_sender_sleeps_until_something_can_fall_due_and_a_full_window_waits_for_acks():
    """No poll: with nothing waiting or in flight the sender sleeps until woken; a full
    window sleeps until an ack (which wakes it) or the ack timeout, not 5 ms at a time."""
    store = SimpleNamespace(node="n1", last_seq=0, acked_seq=0, on_commit=[])
    options = SyncOptions(batch_rows=10, interval_s=10.0, ack_timeout_s=5.0, window=2)
    agent = SyncAgent(None, store, options)  # type: ignore[arg-type]
    now = time.monotonic()
    agent._last_send = agent._progress_at = now
    assert agent._sleep_for(now) is None  # idle: until a commit wakes it
    store.last_seq = 3
    assert agent._sleep_for(now + 4) == pytest.approx(6.0)  # the interval's remainder
    agent.sent_upto = 3
    assert agent._sleep_for(now + 1) == pytest.approx(4.0)  # the ack timeout's remainder
    agent.sent_upto = store.last_seq = 20  # two batches in flight: the window is full
    store.last_seq = 25
    agent._last_send = now - 20  # the interval is long over for the rows waiting
    assert not agent._due(now + 2)
    assert agent._sleep_for(now + 12) == pytest.approx(0.005)  # the ack is overdue
    assert agent._sleep_for(now + 2) == pytest.approx(3.0)  # not the spent interval


async def test_a_reconnect_gives_the_batches_in_flight_a_whole_ack_timeout():
    store = SimpleNamespace(node="n1", last_seq=10, acked_seq=0, on_commit=[])
    agent = SyncAgent(None, store, SyncOptions(ack_timeout_s=5.0))  # type: ignore[arg-type]
    agent.sent_upto = 10
    agent._progress_at = time.monotonic() - 60  # the outage
    await agent._reconnected(session_present=True)
    assert agent._wake.is_set()
    assert agent._sleep_for(time.monotonic()) == pytest.approx(5.0, abs=0.1)
