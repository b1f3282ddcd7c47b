"""A node's Prometheus metrics, read from the counters it already keeps, at scrape time.

Opt-in: with `metrics_port` > 0 a node serves `/metrics` on `metrics_host:metrics_port`
(prometheus_client's own HTTP server, on a thread) from a registry of its own, so several
nodes in one process each have their own endpoint. Nothing is counted twice and nothing
runs per frame: a scrape reads what the heartbeat reports (`node.stats()`: the role's
counters, its levels, the store's rows) and the bus's, the store's and the sync agent's
counters. Between scrapes metrics cost nothing.

The read runs on the node's event loop, the only thread that changes those counters (a
scrape comes in on the server's thread and waits up to `SNAPSHOT_TIMEOUT_S` for the loop):
a node whose loop is stuck answers its scrape with an error, and Prometheus sees the
target down, which is the truth.

Names (every series labelled `node`, `role` and `site`; docs/metrics.md says what each
means): a role counter `<c>` is `edgebus_<c>_total` (frames_sent, frames_done,
frames_dropped, bytes_sent, bytes_received, deadline_hits, deadline_misses,
frames_offloaded, ...), a level is a gauge (`edgebus_bucket_tokens`,
`edgebus_sync_rows_waiting`, ...), the bus's counters are `edgebus_bus_<c>_total`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from edgebus import __version__
from edgebus.errors import LaunchError

if TYPE_CHECKING:
    from edgebus.actor.lifecycle import Node

log = logging.getLogger("edgebus.metrics")

PREFIX = "edgebus_"
LABELS = ("node", "role", "site")
SNAPSHOT_TIMEOUT_S = 5.0

# Keys of node.stats() beyond the role's counters that only ever grow: counters too.
MONOTONIC_STATS = frozenset(
    {"rows_stored", "store_errors", "late_chunks", "duplicate_chunks", "expired_frames",
     "global_rows_stored", "policy_changes"}
)  # fmt: skip
# Levels among node.stats(), under a name that says their unit; any other key that is not
# a counter is a gauge under its own name. nodes_online is a role counter field that is set,
# not counted.
GAUGE_NAMES = {
    "bucket_tokens": "bucket_tokens",
    "link_rate": "link_rate_bytes_per_second",
    "rows_unsynced": "sync_rows_waiting",
    "nodes_online": "nodes_online",
}
# BusStats.unacknowledged is set once, at close; the live figure is a gauge below.
BUS_SNAPSHOT_FIELDS = frozenset({"unacknowledged"})
# The store's write errors are node.stats()'s store_errors already.
STORE_FIELDS_ELSEWHERE = frozenset({"write_errors"})

HELP = {
    "frames_sent": "Frames a camera sent (whole or cut by their deadline).",
    "frames_complete": "Frames a camera sent whole before their deadline.",
    "frames_truncated": "Frames a camera's deadline cut short.",
    "frames_done": "Frames an edge decided (classified from what arrived).",
    "frames_dropped": "Frames a camera recorded as dropped, with a reason.",
    "drop_records": "Dropped-frame records written (camera or edge).",
    "bytes_sent": "Frame bytes a camera put on the wire.",
    "bytes_received": "Frame bytes an edge received.",
    "deadline_hits": "Frames an edge decided within their deadline.",
    "deadline_misses": "Frames an edge decided after their deadline.",
    "offload_decisions": "Frames the camera's offloading policy decided on.",
    "frames_offloaded": "Frames offloaded to the edge under the token bucket.",
    "frames_weak_only": "Frames answered by the camera's weak model alone.",
    "offloads_denied_no_token": "Offloads the policy wanted but the bucket had no token for.",
    "rows_stored": "Rows in the node's local store (its highest sequence number).",
    "store_errors": "Failed commits of the local store.",
    "bucket_tokens": "Tokens in the camera's offloading token bucket now (its level).",
    "link_rate_bytes_per_second": "The camera's emulated uplink rate now.",
    "sync_rows_waiting": "Local rows the global store has not acknowledged yet (sync lag).",
    "sync_last_ack_age_seconds": "Seconds since the global store last acknowledged rows "
    "(since the metrics endpoint started, before the first ack).",
    "bus_reconnects": "Reconnects to the broker.",
    "bus_published": "Messages published.",
    "bus_published_bytes": "Payload bytes published.",
    "deadletters": "Payloads that failed to decode, sent to the deadletter topic.",
    "bus_inflight_window": "QoS > 0 messages the broker lets this node have in flight.",
    "bus_unacknowledged": "Messages queued or in flight, not yet acknowledged by the broker.",
    "bus_inflight": "QoS > 0 messages sent and awaiting the broker's acknowledgement.",
    "bus_connected": "1 while the bus is connected to the broker.",
    "node_up": "1 while the node is online (listening, not stopping).",
    "nodes_online": "Nodes the coordinator sees online now.",
}


@dataclass(frozen=True, slots=True)
class Sample:
    kind: str  # counter | gauge
    name: str  # without the prefix (and without _total)
    help: str
    value: float


def _counter(name: str, value: float, fallback: str = "") -> Sample:
    return Sample("counter", name, HELP.get(name, fallback or f"{name}, as counted."), value)


def _gauge(name: str, value: float, fallback: str = "") -> Sample:
    return Sample("gauge", name, HELP.get(name, fallback or f"{name}, as reported."), value)


def node_samples(node: Node, last_ack_mono: float) -> list[Sample]:
    """Every figure of one node, read now (on its event loop)."""
    counters = set(node.counters.as_stats())
    samples: list[Sample] = []
    for key, value in node.stats().items():
        if (key in counters or key in MONOTONIC_STATS) and key not in GAUGE_NAMES:
            samples.append(_counter(key, value))
        else:
            samples.append(_gauge(GAUGE_NAMES.get(key, key), value))
    bus = node.bus
    samples += [
        _counter(f"bus_{f.name}", float(getattr(bus.stats, f.name)), f"Bus: {f.name}.")
        for f in dataclasses.fields(bus.stats)
        if f.name not in BUS_SNAPSHOT_FIELDS
    ]
    samples += [
        _counter("deadletters", float(bus.deadletters.total)),
        _gauge("bus_inflight_window", float(bus.window)),
        _gauge("bus_unacknowledged", float(bus.outbox.unacknowledged)),
        _gauge("bus_inflight", float(bus.outbox.inflight)),
        _gauge("bus_connected", float(bus.connected)),
        _gauge("node_up", float(node.ready.is_set() and not node.stopping.is_set())),
    ]
    storage = node.storage
    if storage is not None:
        store, agent = storage.store.stats, storage.agent.stats
        samples += [
            _counter(f"store_{f.name}", float(getattr(store, f.name)), f"Local store: {f.name}.")
            for f in dataclasses.fields(store)
            if f.name not in STORE_FIELDS_ELSEWHERE
        ]
        samples += [
            _counter(f"sync_{f.name}", float(getattr(agent, f.name)), f"Store sync: {f.name}.")
            for f in dataclasses.fields(agent)
        ]
        samples.append(_gauge("sync_last_ack_age_seconds", time.monotonic() - last_ack_mono))
    return samples


class NodeCollector(Collector):
    """Reads one node's counters when scraped; labels every series node, role, site."""

    def __init__(self, node: Node, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.node = node
        self.loop = loop
        self.labels = [node.node_id, node.role, node.settings.site]
        self.last_ack_mono = time.monotonic()
        if node.storage is not None:
            node.storage.agent.on_ack.append(self._acked)

    def _acked(self, _seq: int, at_mono: float) -> None:
        self.last_ack_mono = at_mono

    def snapshot(self) -> list[Sample]:
        """The samples, read on the node's loop (directly when already on it)."""
        loop = self.loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or not loop.is_running():
            return node_samples(self.node, self.last_ack_mono)
        done: concurrent.futures.Future[list[Sample]] = concurrent.futures.Future()

        def read() -> None:
            try:
                done.set_result(node_samples(self.node, self.last_ack_mono))
            except Exception as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(read)
        return done.result(SNAPSHOT_TIMEOUT_S)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily]:
        info = InfoMetricFamily(f"{PREFIX}node", "The node and its edgebus version.", labels=LABELS)
        info.add_metric(self.labels, {"version": __version__})
        yield info
        for sample in self.snapshot():
            family: CounterMetricFamily | GaugeMetricFamily
            if sample.kind == "counter":
                family = CounterMetricFamily(PREFIX + sample.name, sample.help, labels=LABELS)
            else:
                family = GaugeMetricFamily(PREFIX + sample.name, sample.help, labels=LABELS)
            family.add_metric(self.labels, sample.value)
            yield family


def metric_names(families: Iterable[object]) -> set[str]:
    """The sample names a scrape holds (edgebus_frames_sent_total, edgebus_node_info, ...)."""
    return {s.name for f in families for s in getattr(f, "samples", [])}


class MetricsEndpoint:
    """One node's /metrics: its own registry, served by prometheus_client on a thread."""

    def __init__(self, node: Node, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = NodeCollector(node, loop)
        self.registry.register(self.collector)
        self.host = node.settings.metrics_host
        self.port = node.settings.metrics_port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsEndpoint:
        """Serve, or raise MetricsPortError (one line naming the port)."""
        try:
            self._server, self._thread = start_http_server(
                self.port, self.host, registry=self.registry
            )
        except OSError as exc:
            raise MetricsPortError(self.node.node_id, self.host, self.port, exc) from None
        log.info("%s serves Prometheus metrics at %s", self.node.node_id, self.url)
        return self

    def stop(self) -> None:
        """Stop serving (blocks up to the server's poll interval: call off the loop)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)


class MetricsPortError(LaunchError):
    """The metrics endpoint could not listen; the message is one line naming the port."""

    def __init__(self, node_id: str, host: str, port: int, exc: OSError) -> None:
        why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        super().__init__(
            f"{node_id}: cannot serve metrics on {host}:{port} (metrics_port {port}): {why}"
        )


def probe_port(node_id: str, host: str, port: int) -> None:
    """Raise MetricsPortError now if `host:port` cannot be listened on (as the server would,
    with SO_REUSEADDR), so a launcher can refuse a taken port before it starts anything."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise MetricsPortError(node_id, host, port, exc) from None


async def start_metrics(node: Node) -> MetricsEndpoint | None:
    """The node's endpoint when metrics_port is set, serving; None when it is 0 (off)."""
    if node.settings.metrics_port <= 0:
        return None
    endpoint = MetricsEndpoint(node, asyncio.get_running_loop())
    return await asyncio.to_thread(endpoint.start)


async def stop_metrics(endpoint: MetricsEndpoint | None) -> None:
    if endpoint is not None:
        await asyncio.to_thread(endpoint.stop)
