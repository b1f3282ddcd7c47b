"""`edgebus up`: every role on one machine, with the embedded broker when none is given."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live

from edgebus.broker.embedded import EmbeddedBroker
from edgebus.config import Settings
from edgebus.coordinator.node import CoordinatorNode
from edgebus.dashboard import FleetView, follow
from edgebus.nodes import CameraNode, CloudNode, EdgeNode
from edgebus.nodes.base import Node, bus_for

# Keys a --processes child inherits through the environment: storage (step 3), the
# camera pipeline (step 4), its offloading policy (step 5) and scheduling (step 7).
_STORAGE_KEYS = (
    "codec",
    "link",
    "source",
    "chunk_bytes",
    "data_dir",
    "store_enabled",
    "store_flush_ms",
    "sync_batch_rows",
    "sync_interval_s",
    "sync_ack_timeout_s",
    "sync_window",
    "retention_days",
    "retention_interval_s",
    "offload",
    "offload_rate",
    "offload_bucket",
    "offload_policy",
    "offload_costs",
    "scheduled",
    "peer_links",
    "edge_downlink_bps",
    "edge_capacity_fps",
)


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for key in _STORAGE_KEYS:
        value = getattr(settings, key)
        if key == "data_dir":
            value = os.path.abspath(value)
        env[f"EDGEBUS_{key.upper()}"] = str(value)
    return env


class LaunchError(RuntimeError):
    """A node of `edgebus up` failed to start; the message is one line."""


@dataclass(slots=True)
class UpPlan:
    cameras: int = 2
    duration_s: float = 10.0
    broker: str | None = None
    processes: bool = False
    dashboard: bool = True
    # Cameras' uplink trace: the PNC system's point is accuracy that follows the bandwidth.
    link: str = "switching"
    # More than one edge: the coordinator maps cameras to edges by JSTSH (step 7).
    edges: int = 1
    kill_edge_after_s: float | None = None  # --processes: SIGKILL the last edge then


# A camera reaches its nearest edge over its uplink trace and every other edge over a
# slower emulated link (the light-jamming rate), so the mapping has something to weigh.
FAR_EDGE_BPS = 2400.0
# Each edge's ingress, shared by the cameras mapped to it: two cameras' unjammed uplinks.
EDGE_DOWNLINK_BPS = 12000.0


def edge_ids(plan: UpPlan) -> list[str]:
    return [f"edge-{j + 1}" for j in range(plan.edges)]


def camera_ids(plan: UpPlan) -> list[str]:
    return [f"camera-{i + 1}" for i in range(plan.cameras)]


def far_links(camera_index: int, edges: list[str]) -> str:
    """`peer_links` of camera i: every edge but its nearest (edge i mod E) at FAR_EDGE_BPS."""
    near = edges[camera_index % len(edges)]
    return ",".join(f"{e}={FAR_EDGE_BPS:g}" for e in edges if e != near)


def install_stop_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


def _node_command(settings: Settings, role: str, node_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edgebus",
        "node",
        "--role",
        role,
        "--id",
        node_id,
        "--site",
        settings.site,
        "--broker",
        settings.broker,
        "--period-ms",
        str(settings.frame_period_ms),
        "--heartbeat",
        str(settings.heartbeat_s),
        "--wait",
        "20",
    ]


async def _until_ready(node: Node, task: asyncio.Task[None], timeout_s: float = 15.0) -> None:
    ready = asyncio.create_task(node.ready.wait())
    done, _ = await asyncio.wait(
        {ready, task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    ready.cancel()
    if task in done:
        task.result()  # raises the node's start-up error
    elif ready not in done:
        raise LaunchError(f"{node.role} {node.node_id} did not start within {timeout_s:g} s")


async def _until_online(
    view: FleetView, node_id: str, child: subprocess.Popen[bytes], timeout_s: float = 30.0
) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        row = view.rows.get(node_id)
        if row is not None and row.state == "online":
            return
        if child.poll() is not None:
            raise LaunchError(f"{node_id} exited with code {child.returncode} before going online")
        await asyncio.sleep(0.05)
    raise LaunchError(f"{node_id} did not report online within {timeout_s:g} s")


async def _until_offline(view: FleetView, role: str | None = None, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        rows = [r for r in view.rows.values() if role is None or r.role == role]
        if all(r.state == "offline" for r in rows):
            return
        await asyncio.sleep(0.05)


@dataclass(slots=True)
class Fleet:
    """The nodes of one `edgebus up`: in this process, or children (`--processes`)."""

    in_process: list[Node]
    tasks: list[asyncio.Task[None]]
    edge_children: dict[str, subprocess.Popen[bytes]]
    camera_children: list[subprocess.Popen[bytes]]

    def children(self) -> list[subprocess.Popen[bytes]]:
        return [*self.edge_children.values(), *self.camera_children]

    def tasks_of(self, roles: set[str]) -> list[asyncio.Task[None]]:
        return [t for n, t in zip(self.in_process, self.tasks, strict=True) if n.role in roles]


async def _drain(fleet: Fleet, view: FleetView, settings: Settings) -> None:
    """Stop cameras first, give edges time to decide the frames in flight, then the rest."""
    loop = asyncio.get_running_loop()
    for node in fleet.in_process:
        if node.role == "camera":
            node.stop()
    await asyncio.gather(*fleet.tasks_of({"camera"}), return_exceptions=True)
    for child in fleet.camera_children:
        child.send_signal(signal.SIGTERM)
    for child in fleet.camera_children:
        await loop.run_in_executor(None, child.wait, 15)
    # A node's last heartbeat goes out before its offline status: once every camera reads
    # offline, frames_sent is final.
    await _until_offline(view, "camera")
    # The edge decides every sent frame within its grace period (two frame periods).
    grace = 2 * settings.frame_period_ms / 1000 + 1.0
    until = loop.time() + grace
    while loop.time() < until:
        totals = view.totals()
        if totals["results_on_bus"] + totals["frames_dropped"] >= totals["frames_sent"] > 0:
            break
        await asyncio.sleep(0.1)
    # Every node syncs its store on the way out, so the cloud (the global store's sink)
    # stops last.
    for node in fleet.in_process:
        if node.role != "cloud":
            node.stop()
    live_edges = [c for c in fleet.edge_children.values() if c.poll() is None]
    for child in live_edges:
        child.send_signal(signal.SIGTERM)
    for child in live_edges:
        await loop.run_in_executor(None, child.wait, 30)
    await asyncio.gather(*fleet.tasks_of({"coordinator", "edge", "camera"}), return_exceptions=True)
    for node in fleet.in_process:
        node.stop()


def _node_settings(settings: Settings, plan: UpPlan) -> dict[str, Settings]:
    """Every node's settings by id: one edge as before, or several under JSTSH."""
    edges, cameras = edge_ids(plan), camera_ids(plan)
    scheduled = plan.edges > 1

    def configured(role: str, node_id: str, **extra: object) -> Settings:
        return dataclasses.replace(settings, role=role, node_id=node_id, **extra)

    nodes = {
        "coordinator": configured(
            "coordinator", "coordinator", schedule="jstsh" if scheduled else settings.schedule
        ),
        "cloud": configured("cloud", "cloud"),
    }
    for edge in edges:
        extra = {"scheduled": True, "edge_downlink_bps": EDGE_DOWNLINK_BPS} if scheduled else {}
        nodes[edge] = configured("edge", edge, **extra)
    for index, camera in enumerate(cameras):
        extra = {"scheduled": True, "peer_links": far_links(index, edges)} if scheduled else {}
        nodes[camera] = configured("camera", camera, **extra)
    return nodes


async def run_up(base: Settings, plan: UpPlan, console: Console) -> dict[str, float]:
    """Run the fleet for plan.duration_s (or until a signal) and return the totals."""
    if plan.kill_edge_after_s is not None and not (plan.processes and plan.edges > 1):
        raise LaunchError("--kill-edge needs --processes and --edges 2 or more")
    broker: EmbeddedBroker | None = None
    if plan.broker is None:
        broker = await EmbeddedBroker(port=0).start()
        url = broker.url
        console.print(f"embedded broker listening on {url}")
    else:
        url = plan.broker
    settings = dataclasses.replace(base, broker=url, link=plan.link)
    if broker is not None:
        # amqtt speaks 3.1.1 only; saying so skips the MQTT 5 attempt of "auto".
        settings = dataclasses.replace(settings, protocol="3.1.1")
    nodes = _node_settings(settings, plan)
    edges, cameras = edge_ids(plan), camera_ids(plan)
    in_process: list[Node] = [CoordinatorNode(nodes["coordinator"]), CloudNode(nodes["cloud"])]
    if not plan.processes:
        in_process += [EdgeNode(nodes[e]) for e in edges]
        in_process += [CameraNode(nodes[c]) for c in cameras]
    fleet = Fleet(in_process, [], {}, [])

    view = FleetView()
    observer = bus_for(dataclasses.replace(settings, node_id="dashboard"))
    stop = asyncio.Event()
    install_stop_signals(stop.set)
    run_started_ts = time.time()
    killed_at: float | None = None
    try:
        await observer.start(timeout=10)
        watcher = asyncio.create_task(follow(observer, view))
        # Edges and the cloud subscribe before cameras publish their first frame.
        for node in in_process:
            fleet.tasks.append(asyncio.create_task(node.run(connect_timeout=10)))
            if not isinstance(node, CameraNode):
                await _until_ready(node, fleet.tasks[-1])
        # Cameras start together; the run's clock starts once all of them are up.
        for node, task in zip(in_process, fleet.tasks, strict=True):
            if isinstance(node, CameraNode):
                await _until_ready(node, task)
        if plan.processes:
            # Cameras start once every edge reports online (listening).
            for edge in edges:
                child = _spawn(nodes[edge])
                fleet.edge_children[edge] = child
                await _until_online(view, edge, child)
            fleet.camera_children += [_spawn(nodes[c]) for c in cameras]
            # Likewise for camera processes, which take seconds to import their models on a
            # busy machine; that would otherwise eat --duration.
            for camera, child in zip(cameras, fleet.camera_children, strict=True):
                await _until_online(view, camera, child)
        live = (
            Live(view.table(), console=console, refresh_per_second=2, transient=False)
            if plan.dashboard
            else None
        )
        with live if live is not None else contextlib.nullcontext():
            loop = asyncio.get_running_loop()
            started = loop.time()
            deadline = started + plan.duration_s
            while not stop.is_set() and loop.time() < deadline:
                failed = [t for t in fleet.tasks if t.done() and t.exception() is not None]
                if failed:
                    raise failed[0].exception()  # type: ignore[misc]
                if (
                    plan.kill_edge_after_s is not None
                    and killed_at is None
                    and loop.time() - started >= plan.kill_edge_after_s
                ):
                    fleet.edge_children[edges[-1]].kill()  # SIGKILL: no goodbye, only the LWT
                    killed_at = time.time()
                    view.mark_failed(edges[-1], killed_at)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                if live is not None:
                    live.update(view.table())
        elapsed = loop.time() - started
        await _drain(fleet, view, settings)
        await asyncio.gather(*fleet.tasks, return_exceptions=True)
        await _until_offline(view)  # so the summary holds every node's final counters
        watcher.cancel()
    finally:
        for task in fleet.tasks:
            task.cancel()
        for child in fleet.children():
            if child.poll() is None:
                child.kill()
        await observer.close(flush_timeout=0)
        if broker is not None:
            await broker.stop()
    console.print(
        view.table(title="edgebus up: summary (averages over the run)", duration_s=elapsed)
    )
    totals = view.totals()
    if settings.store_enabled:
        node_ids = ["coordinator", "cloud", *edges, *cameras]
        totals.update(await _store_totals(settings, node_ids, run_started_ts))
    return totals


def _spawn(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _node_command(settings, settings.role, settings.node_id), env=_child_env(settings)
    )


async def _store_totals(
    settings: Settings, node_ids: list[str], since_ts: float
) -> dict[str, float]:
    """This run's rows in the local stores and in the global store, after the final sync."""
    from edgebus.storage.counts import global_rows, local_rows
    from edgebus.storage.runtime import global_store_url, local_store_path

    def count() -> dict[str, float]:
        local = [local_rows(local_store_path(settings, n), n, since_ts) for n in node_ids]
        stored = global_rows(global_store_url(settings), node_ids, since_ts)
        return {
            "stored_frames": float(stored["frames"]),
            "stored_results": float(stored["results"]),
            "local_rows": float(sum(sum(c.values()) for c in local)),
            "global_rows": float(sum(stored.values())),
        }

    return await asyncio.get_running_loop().run_in_executor(None, count)
