"""`edgebus up`: every role on one machine, with the embedded broker when none is given."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edgebus import fleet_file
from edgebus.actor.lifecycle import Node, bus_for
from edgebus.broker.embedded import EmbeddedBroker
from edgebus.config import Settings, write_private_toml
from edgebus.coordinator.node import CoordinatorNode
from edgebus.dashboard import FleetView, follow
from edgebus.errors import LaunchError
from edgebus.nodes import CameraNode, CloudNode, EdgeNode
from edgebus.topics import Topics

log = logging.getLogger("edgebus.up")

# How long `up` waits for a stopping child before it sends SIGKILL. A camera settles its
# frames' outcomes and every node drains its store sync on the way out.
CHILD_STOP_S = 30.0
# A child that has not come online while no other child did for this long is stuck.
START_STALL_S = 60.0


class ChildSettings:
    """Each child's full effective settings (config file, environment and flags), as a
    TOML file in a folder only this user can read, removed when `up` ends: secrets such as
    the broker's password never appear on a command line."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="edgebus-up-"))  # mode 0700

    def write(self, settings: Settings) -> Path:
        absolute = dataclasses.replace(settings, data_dir=os.path.abspath(settings.data_dir))
        return write_private_toml(absolute, self.folder / f"{settings.node_id}.toml")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _child_env() -> dict[str, str]:
    # The settings file holds the effective values; EDGEBUS_* variables would override it.
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}


@dataclass(slots=True)
class UpPlan:
    cameras: int = 2
    duration_s: float = 10.0
    broker: str | None = None
    processes: bool = False
    dashboard: bool = True
    # Cameras' uplink trace: the PNC system's point is accuracy that follows the bandwidth.
    link: str = "switching"
    # More than one edge: the coordinator maps cameras to edges by JSTSH.
    edges: int = 1
    kill_edge_after_s: float | None = None  # --processes: SIGKILL the last edge then
    # Sensor streams: accelerometer windows coded with the model the QoS orchestrator
    # chose. They follow its model switches, so `edgebus qos set` changes what they send.
    sensors: int = 1


# A camera reaches its nearest edge over its uplink trace and every other edge over a
# slower emulated link (the light-jamming rate), so the mapping has something to weigh.
FAR_EDGE_BPS = 2400.0
# Each edge's ingress, shared by the cameras mapped to it: two cameras' unjammed uplinks.
EDGE_DOWNLINK_BPS = 12000.0


# What makes a stream a sensor: the pool's data set, coded by the model in force. Offload
# gates weigh image confidence, so a sensor sends every window.
SENSOR_SETTINGS: dict[str, Any] = {"codec": "qos", "source": "accelerometer", "offload": "off"}


def edge_ids(plan: UpPlan) -> list[str]:
    return [f"edge-{j + 1}" for j in range(plan.edges)]


def camera_ids(plan: UpPlan) -> list[str]:
    """Every stream's id (the role is camera for both): image cameras, then sensors."""
    images = [f"camera-{i + 1}" for i in range(plan.cameras)]
    return images + [f"sensor-{i + 1}" for i in range(plan.sensors)]


def far_links(camera_index: int, edges: list[str]) -> str:
    """`peer_links` of camera i: every edge but its nearest (edge i mod E) at FAR_EDGE_BPS."""
    near = edges[camera_index % len(edges)]
    return ",".join(f"{e}={FAR_EDGE_BPS:g}" for e in edges if e != near)


def install_stop_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


def _node_command(config: Path, role: str, node_id: str) -> list[str]:
    return [sys.executable, "-m", "edgebus", "node", "--role", role, "--id", node_id,
            "--config", str(config), "--wait", "20"]  # fmt: skip


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
    view: FleetView, children: dict[str, subprocess.Popen[bytes]], stall_s: float = START_STALL_S
) -> None:
    """Wait for every child to report online. There is no fixed wall: a big fleet on a
    busy machine takes as long as it takes, so long as children keep coming online; a
    child that exits, or no progress for stall_s, is a one-line LaunchError."""
    loop = asyncio.get_running_loop()
    online: set[str] = set()
    progress_at = loop.time()
    while True:
        for node_id, child in children.items():
            row = view.rows.get(node_id)
            if node_id not in online and row is not None and row.state == "online":
                online.add(node_id)
                progress_at = loop.time()
            elif node_id not in online and child.poll() is not None:
                raise LaunchError(
                    f"{node_id} exited with code {child.returncode} before going online"
                )
        if len(online) == len(children):
            return
        if loop.time() - progress_at > stall_s:
            waiting = sorted(set(children) - online)
            raise LaunchError(
                f"{', '.join(waiting)} did not report online; no node came online in the "
                f"last {stall_s:g} s"
            )
        await asyncio.sleep(0.05)


async def stop_children(
    children: dict[str, subprocess.Popen[bytes]], grace_s: float = CHILD_STOP_S
) -> list[str]:
    """SIGTERM each child, wait up to grace_s for all of them, then SIGKILL the rest;
    returns the ones that had to be killed."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    until = loop.time() + grace_s
    while loop.time() < until and any(c.poll() is None for c in children.values()):
        await asyncio.sleep(0.05)
    killed = [node_id for node_id, c in children.items() if c.poll() is None]
    for node_id in killed:
        children[node_id].kill()
        children[node_id].wait()
        log.warning("%s did not stop within %g s of SIGTERM; killed", node_id, grace_s)
    return killed


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
    camera_children: dict[str, subprocess.Popen[bytes]]
    killed: list[str] = dataclasses.field(default_factory=list)

    def children(self) -> list[subprocess.Popen[bytes]]:
        return [*self.edge_children.values(), *self.camera_children.values()]

    def tasks_of(self, roles: set[str]) -> list[asyncio.Task[None]]:
        return [t for n, t in zip(self.in_process, self.tasks, strict=True) if n.role in roles]


async def _drain(fleet: Fleet, view: FleetView, settings: Settings) -> None:
    """Stop cameras first, give edges time to decide the frames in flight, then the rest."""
    loop = asyncio.get_running_loop()
    for node in fleet.in_process:
        if node.role == "camera":
            node.stop()
    await asyncio.gather(*fleet.tasks_of({"camera"}), return_exceptions=True)
    fleet.killed += await stop_children(fleet.camera_children)
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
    live_edges = {e: c for e, c in fleet.edge_children.items() if c.poll() is None}
    fleet.killed += await stop_children(live_edges)
    await asyncio.gather(*fleet.tasks_of({"coordinator", "edge", "camera"}), return_exceptions=True)
    for node in fleet.in_process:
        node.stop()


def _node_settings(settings: Settings, plan: UpPlan) -> dict[str, Settings]:
    """Every node's settings by id: one edge as before, or several under JSTSH."""
    edges, cameras = edge_ids(plan), camera_ids(plan)
    scheduled = plan.edges > 1

    def configured(role: str, node_id: str, **extra: Any) -> Settings:
        return dataclasses.replace(settings, role=role, node_id=node_id, **extra)

    nodes = {
        "coordinator": configured(
            "coordinator", "coordinator", schedule="jstsh" if scheduled else settings.schedule
        ),
        "cloud": configured("cloud", "cloud"),
    }
    for edge in edges:
        edge_extra: dict[str, Any] = (
            {"scheduled": True, "edge_downlink_bps": EDGE_DOWNLINK_BPS} if scheduled else {}
        )
        nodes[edge] = configured("edge", edge, **edge_extra)
    for index, camera in enumerate(cameras):
        camera_extra: dict[str, Any] = (
            {"scheduled": True, "peer_links": far_links(index, edges)} if scheduled else {}
        )
        if camera.startswith("sensor-"):
            camera_extra.update(SENSOR_SETTINGS)
        nodes[camera] = configured("camera", camera, **camera_extra)
    return nodes


async def run_up(base: Settings, plan: UpPlan, console: Console) -> dict[str, float]:
    """Run the fleet for plan.duration_s (or until a signal) and return the totals."""
    if plan.kill_edge_after_s is not None and not (plan.processes and plan.edges > 1):
        raise LaunchError("--kill-edge needs --processes and --edges 2 or more")
    broker: EmbeddedBroker | None = None
    if plan.broker is None:
        broker = await EmbeddedBroker(port=0).start()
        console.print(f"embedded broker listening on {broker.url}", soft_wrap=True)
    try:
        return await _run_fleet(base, plan, console, broker)
    finally:
        # Whatever failed (a bad setting found while building a node included), the
        # broker stops cleanly rather than being torn down by the event loop's end.
        if broker is not None:
            await broker.stop()
        fleet_file.withdraw(Path(base.data_dir))


async def _run_fleet(
    base: Settings, plan: UpPlan, console: Console, broker: EmbeddedBroker | None
) -> dict[str, float]:
    url = broker.url if broker is not None else str(plan.broker)
    settings = dataclasses.replace(base, broker=url, link=plan.link)
    if broker is not None:
        # amqtt speaks 3.1.1 only; saying so skips the MQTT 5 attempt of "auto".
        settings = dataclasses.replace(settings, protocol="3.1.1")
    # The tools run from this directory find the fleet's broker here (fleet_file.py).
    fleet_file.publish(Path(settings.data_dir), url, settings.site, settings.protocol)
    nodes = _node_settings(settings, plan)
    edges, cameras = edge_ids(plan), camera_ids(plan)
    in_process: list[Node] = [CoordinatorNode(nodes["coordinator"]), CloudNode(nodes["cloud"])]
    if not plan.processes:
        in_process += [EdgeNode(nodes[e]) for e in edges]
        in_process += [CameraNode(nodes[c]) for c in cameras]
    fleet = Fleet(in_process, [], {}, {})

    view = FleetView()
    observer = bus_for(dataclasses.replace(settings, node_id="dashboard"))
    stop = asyncio.Event()
    install_stop_signals(stop.set)
    run_started_ts = time.time()
    child_settings = ChildSettings()
    elapsed: float | None = None  # set once the run itself began: then a summary follows
    failure: BaseException | None = None
    try:
        await observer.start(timeout=10)
        watcher = asyncio.create_task(follow(observer, view))
        await _start(fleet, plan, nodes, view, child_settings)
        results = Topics(settings.site).results()
        console.print(
            f"from this directory, try: edgebus nodes | edgebus sub '{results}' --count 5 | "
            "edgebus query results --fresh --since 5m",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await _run(fleet, plan, view, stop, console, edges, settings.frame_period_ms)
        except Exception as exc:  # a node failed mid-run: still drain and sum up
            failure = exc
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
                child.wait()
        child_settings.remove()
        await observer.close(flush_timeout=0)
    print_wide(
        console,
        view.table(title="edgebus up: summary (averages over the run)", duration_s=elapsed,
                   deadline_ms=settings.frame_period_ms),
    )  # fmt: skip
    totals = view.totals()
    totals["children_killed"] = float(len(fleet.killed))
    if settings.store_enabled:
        node_ids = ["coordinator", "cloud", *edges, *cameras]
        totals.update(await _store_totals(settings, node_ids, run_started_ts))
    if failure is not None:
        raise failure
    return totals


async def _start(
    fleet: Fleet, plan: UpPlan, nodes: dict[str, Settings], view: FleetView,
    child_settings: ChildSettings,
) -> None:  # fmt: skip
    # Edges and the cloud subscribe before cameras publish their first frame.
    for node in fleet.in_process:
        fleet.tasks.append(asyncio.create_task(node.run(connect_timeout=10)))
        if not isinstance(node, CameraNode):
            await _until_ready(node, fleet.tasks[-1])
    # Cameras start together; the run's clock starts once all of them are up.
    for node, task in zip(fleet.in_process, fleet.tasks, strict=True):
        if isinstance(node, CameraNode):
            await _until_ready(node, task)
    if plan.processes:
        # Cameras start once every edge reports online (listening). Camera processes take
        # seconds to import their models on a busy machine; that would otherwise eat
        # --duration.
        for edge in edge_ids(plan):
            fleet.edge_children[edge] = _spawn(nodes[edge], child_settings)
        await _until_online(view, fleet.edge_children)
        for camera in camera_ids(plan):
            fleet.camera_children[camera] = _spawn(nodes[camera], child_settings)
        await _until_online(view, fleet.camera_children)


def print_wide(console: Console, table: Table) -> None:
    """Print a table whole: on a terminal at its width, elsewhere (a file, a pipe) as wide
    as the table needs, so that no column is folded or cut."""
    if console.is_terminal:
        console.print(table)
        return
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    narrow = console.width
    console.width = max(narrow, needed)  # print() never goes wider than the console
    try:
        console.print(table)
    finally:
        console.width = narrow


async def _run(
    fleet: Fleet, plan: UpPlan, view: FleetView, stop: asyncio.Event, console: Console,
    edges: list[str], deadline_ms: float,
) -> None:  # fmt: skip
    # A live view only on a terminal: elsewhere it would print its last frame beside the
    # summary. Log records and the children's output reach the terminal through it
    # (Live redirects stderr), above the table instead of through it.
    live = (
        Live(view.table(deadline_ms=deadline_ms), console=console, refresh_per_second=2,
             transient=False)
        if plan.dashboard and console.is_terminal
        else None
    )  # fmt: skip
    killed_at: float | None = None
    failover_told = False
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
                console.print(
                    f"{loop.time() - started:.1f} s: --kill-edge sent SIGKILL to {edges[-1]}; "
                    "its cameras wait for the coordinator to move them",
                    markup=False, highlight=False, soft_wrap=True,
                )  # fmt: skip
            if view.failover_s is not None and not failover_told:
                failover_told = True
                console.print(
                    f"{loop.time() - started:.1f} s: every camera of {edges[-1]} has another "
                    f"edge, {view.failover_s:.1f} s after the kill",
                    markup=False, highlight=False, soft_wrap=True,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if live is not None:
                live.update(view.table(deadline_ms=deadline_ms))


def _spawn(settings: Settings, child_settings: ChildSettings) -> subprocess.Popen[bytes]:
    config = child_settings.write(settings)
    child = subprocess.Popen(
        _node_command(config, settings.role, settings.node_id), env=_child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    relay_output(child, settings.node_id)
    return child


def relay_output(child: subprocess.Popen[bytes], node_id: str) -> threading.Thread:
    """Copy a child's output to this process's stderr, a line at a time and named, until
    it exits. Written through whatever sys.stderr is at the time: under the live view
    that is rich's proxy, which prints each line above the table."""

    def relay() -> None:
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with _RELAY_LOCK:
                sys.stderr.write(f"{node_id}: {line}\n")
                sys.stderr.flush()

    thread = threading.Thread(target=relay, name=f"relay-{node_id}", daemon=True)
    thread.start()
    return thread


# One line at a time from the relays of all children.
_RELAY_LOCK = threading.Lock()


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
