"""`edgebus up`: every role on one machine, with the embedded broker when none is given.

This module runs the fleet from start to summary; what it runs is launch_plan.py, the
nodes' start-up waits and ordered drain are launch_fleet.py, and the child processes of
`--processes` are launch_children.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edgebus import fleet_file
from edgebus.actor.lifecycle import Node, bus_for
from edgebus.aio import failure, install_stop_signals
from edgebus.broker.embedded import EmbeddedBroker
from edgebus.config import Settings
from edgebus.coordinator.node import CoordinatorNode
from edgebus.dashboard import FleetView, follow
from edgebus.errors import LaunchError
from edgebus.launch_children import ChildSettings, kill_children, spawn
from edgebus.launch_fleet import (
    Fleet,
    drain,
    store_totals,
    until_offline,
    until_online,
    until_ready,
)
from edgebus.launch_plan import (
    UpPlan,
    camera_ids,
    check_metrics_ports,
    edge_ids,
    metrics_line,
    node_settings,
)
from edgebus.nodes import CameraNode, CloudNode, EdgeNode
from edgebus.topics import Topics


async def run_up(base: Settings, plan: UpPlan, console: Console) -> dict[str, float]:
    """Run the fleet for plan.duration_s (or until a signal) and return the totals."""
    if plan.kill_edge_after_s is not None and not (plan.processes and plan.edges > 1):
        raise LaunchError("--kill-edge needs --processes and --edges 2 or more")
    if base.metrics_port > 0:
        check_metrics_ports(node_settings(base, plan))
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
    nodes = node_settings(settings, plan)
    edges, cameras = edge_ids(plan), camera_ids(plan)
    if served := metrics_line(nodes):
        console.print(served, markup=False, highlight=False, soft_wrap=True)

    def build() -> list[Node]:
        built: list[Node] = [CoordinatorNode(nodes["coordinator"]), CloudNode(nodes["cloud"])]
        if not plan.processes:
            built += [EdgeNode(nodes[e]) for e in edges]
            built += [CameraNode(nodes[c]) for c in cameras]
        return built

    # Building a node loads its models (onnxruntime sessions) and may solve an offload
    # policy (an MDP, a DQN): seconds the embedded broker, on this loop, must not stall.
    fleet = Fleet(await asyncio.to_thread(build), [], {}, {})

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
        await drain(fleet, view, settings)
        await asyncio.gather(*fleet.tasks, return_exceptions=True)
        await until_offline(view)  # so the summary holds every node's final counters
        watcher.cancel()
    finally:
        for task in fleet.tasks:
            task.cancel()
        kill_children(fleet.children())
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
        totals.update(await store_totals(settings, node_ids, run_started_ts))
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
            await until_ready(node, fleet.tasks[-1])
    # Cameras start together; the run's clock starts once all of them are up.
    for node, task in zip(fleet.in_process, fleet.tasks, strict=True):
        if isinstance(node, CameraNode):
            await until_ready(node, task)
    if plan.processes:
        # Cameras start once every edge reports online (listening). Camera processes take
        # seconds to import their models on a busy machine; that would otherwise eat
        # --duration.
        for edge in edge_ids(plan):
            fleet.edge_children[edge] = spawn(nodes[edge], child_settings)
        await until_online(view, fleet.edge_children)
        for camera in camera_ids(plan):
            fleet.camera_children[camera] = spawn(nodes[camera], child_settings)
        await until_online(view, fleet.camera_children)


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
            failed = [exc for t in fleet.tasks if (exc := failure(t)) is not None]
            if failed:
                raise failed[0]
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
