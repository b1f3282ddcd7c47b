"""The nodes of one `edgebus up` as they run: waiting until they are ready and online,
draining them in order at the end (cameras first, the cloud last), and counting the rows
the run left in the stores."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from dataclasses import dataclass

from edgebus.actor.lifecycle import Node
from edgebus.config import Settings
from edgebus.dashboard import FleetView
from edgebus.errors import LaunchError
from edgebus.launch_children import stop_children

# A child that has not come online while no other child did for this long is stuck.
START_STALL_S = 60.0


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


async def until_ready(node: Node, task: asyncio.Task[None], timeout_s: float = 15.0) -> None:
    ready = asyncio.create_task(node.ready.wait())
    done, _ = await asyncio.wait(
        {ready, task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    ready.cancel()
    if task in done:
        task.result()  # raises the node's start-up error
    elif ready not in done:
        raise LaunchError(f"{node.role} {node.node_id} did not start within {timeout_s:g} s")


async def until_online(
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


async def until_offline(view: FleetView, role: str | None = None, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        rows = [r for r in view.rows.values() if role is None or r.role == role]
        if all(r.state == "offline" for r in rows):
            return
        await asyncio.sleep(0.05)


async def drain(fleet: Fleet, view: FleetView, settings: Settings) -> None:
    """Stop cameras first, give edges time to decide the frames in flight, then the rest."""
    loop = asyncio.get_running_loop()
    for node in fleet.in_process:
        if node.role == "camera":
            node.stop()
    await asyncio.gather(*fleet.tasks_of({"camera"}), return_exceptions=True)
    fleet.killed += await stop_children(fleet.camera_children)
    # A node's last heartbeat goes out before its offline status: once every camera reads
    # offline, frames_sent is final.
    await until_offline(view, "camera")
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


async def store_totals(
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
