"""Two sites of 4 cameras and an edge each, through bridged brokers, against the same fleet
on one broker; then a 30 s uplink cut and how long the global store takes to catch up.

python benchmarks/bench_sites.py --out results/sites [--duration 40] [--cut 30]
    [--cameras 4] [--period-ms 500]

Every node is its own `edgebus node` process. "one broker": a stock Mosquitto carries
everything. "bridged": each site's cameras and edge talk to their site's stock Mosquitto,
bridged to a cloud Mosquitto by the configuration `edgebus broker-config` writes; the
cloud node (the global store) and the coordinator are in the cloud. A subscriber on the
cloud side measures what the cloud sees: results per second and capture-to-cloud latency.
The edge's own capture-to-result latency comes from the results rows. In the bridged run,
site A's uplink is then cut for --cut seconds; catch-up is the time from the link's return
until the global store holds every row site A had stored by then. Afterwards the stores
are audited (silently lost and duplicated must be 0). Writes sites.csv and sites.png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.actor.connect import bus_for
from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.bench.process_fleet import Fleet, logged, wait_for
from edgebus.bench.result_latency import offloaded_latencies_ms
from edgebus.bench.sites import BridgedSites
from edgebus.config import Settings
from edgebus.messages import Result
from edgebus.reports import write_csv

ONLINE = " online at "
SITES = ("site-a", "site-b")


@dataclass
class CloudWatch:
    """Results as the cloud sees them: arrival time minus capture time."""

    latencies_ms: list[float] = field(default_factory=list)
    counting: bool = False

    def seen(self, result: Result) -> None:
        if self.counting:
            capture = result.ts - result.latency_ms / 1000.0
            self.latencies_ms.append((time.time() - capture) * 1000.0)


def site_nodes(site: str, cameras: int) -> tuple[str, list[str]]:
    letter = site[-1]
    return f"edge-{letter}", [f"camera-{letter}{i}" for i in range(1, cameras + 1)]


async def start_fleet(fleet: Fleet, urls: dict[str, str], cameras: int, scheduled: bool) -> None:
    """On one broker, two edges would each classify every frame: there the coordinator
    maps cameras to edges (JSTSH), as `edgebus up --edges 2` does. Bridged, each site's
    cameras reach only their own site's edge."""
    follow = ("--scheduled",) if scheduled else ()
    fleet.start("cloud", "cloud", broker=urls["cloud"])
    fleet.start("coordinator", "coordinator", *(("--schedule", "jstsh") if scheduled else ()),
                broker=urls["cloud"])  # fmt: skip
    for site in SITES:
        fleet.start("edge", site_nodes(site, cameras)[0], *follow, broker=urls[site])
    await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in fleet.nodes), 120, "core")
    for site in SITES:
        for camera in site_nodes(site, cameras)[1]:
            fleet.start("camera", camera, *follow, broker=urls[site])
    await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in fleet.nodes), 180, "cameras")


async def catch_up_s(
    fleet: Fleet, sites: BridgedSites, site: str, cut_s: float, cameras: int
) -> float:
    nodes = (site_nodes(site, cameras)[0], *site_nodes(site, cameras)[1])
    sites.cut(site)
    await asyncio.sleep(cut_s)
    backlog = {s.node + s.store: s.local_rows for s in fleet.audit().streams if s.node in nodes}
    sites.restore(site)
    restored = time.monotonic()

    def caught_up() -> bool:
        now = {s.node + s.store: s.global_rows for s in fleet.audit().streams}
        return all(now.get(key, 0) >= rows for key, rows in backlog.items())

    await wait_for(caught_up, 300, f"{site}'s backlog in the global store")
    return time.monotonic() - restored


async def run(layout: str, args: argparse.Namespace, progress: Progress) -> dict[str, object]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"edgebus-sites-{layout}-"))
    task = progress.add_task(f"{layout}: starting", total=None)
    sites: BridgedSites | None = None
    single: LocalMosquitto | None = None
    if layout == "bridged":
        sites = await BridgedSites(SITES).start()
        urls = {"cloud": sites.cloud.url, **{s: sites.sites[s].url for s in SITES}}
    else:
        single = LocalMosquitto(stock=True).start()
        urls = dict.fromkeys(("cloud", *SITES), single.url)
    fleet = Fleet(urls["cloud"], data_dir, period_ms=args.period_ms)
    watch = CloudWatch()
    observer = bus_for(Settings(broker=urls["cloud"], node_id=f"bench-{layout}", protocol="auto"))
    row: dict[str, object] = {"layout": layout, "catch_up_s": "n/a"}
    try:
        await observer.start(timeout=10)
        results = await observer.subscribe(observer.topics.results(), qos=1)

        async def collect() -> None:
            async for delivery in results:
                if isinstance(delivery.message, Result):
                    watch.seen(delivery.message)

        collector = asyncio.create_task(collect())
        await start_fleet(fleet, urls, args.cameras, scheduled=sites is None)
        await asyncio.sleep(3.0)  # past the first frames' start-up
        progress.update(task, description=f"{layout}: measuring {args.duration:g} s")
        watch.counting = True
        await asyncio.sleep(args.duration)
        watch.counting = False
        latencies = np.array(watch.latencies_ms)
        row["cloud_results_per_s"] = round(len(latencies) / args.duration, 2)
        row["cloud_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
        row["cloud_p99_ms"] = round(float(np.percentile(latencies, 99)), 1)
        if sites is not None and args.cut > 0:
            progress.update(task, description=f"{layout}: site-a cut for {args.cut:g} s")
            row["catch_up_s"] = round(await catch_up_s(fleet, sites, "site-a", args.cut,
                                                       args.cameras), 1)  # fmt: skip
        progress.update(task, description=f"{layout}: stopping")
        codes = await fleet.stop_all()
        collector.cancel()
        report = fleet.audit()
        edge = offloaded_latencies_ms(f"sqlite:///{data_dir}/global.sqlite3")
        row.update({
            "edge_p50_ms": round(float(np.percentile(edge, 50)), 1),
            "edge_p99_ms": round(float(np.percentile(edge, 99)), 1),
            "captured": sum(c.captured for c in report.cameras),
            "classified": sum(c.results for c in report.cameras),
            "dropped": sum(c.dropped for c in report.cameras),
            "silently_lost": report.frames_lost, "duplicated": report.frames_duplicated,
            "rows_lost": report.rows_lost, "exit_codes_ok": all(c == 0 for c in codes.values()),
        })  # fmt: skip
    finally:
        fleet.kill_all()
        await observer.close(flush_timeout=0)
        if sites is not None:
            await sites.stop()
        if single is not None:
            single.__exit__(None, None, None)
        progress.remove_task(task)
    return row


def plot(path: Path, rows: list[dict[str, object]], period_ms: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(r["layout"]) for r in rows]
    x = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(x, [float(r["cloud_results_per_s"]) for r in rows])  # type: ignore[arg-type]
    left.set_xticks(x, labels)
    left.set_ylabel("results per second seen in the cloud")
    for offset, key in ((-0.3, "edge_p99_ms"), (0.0, "cloud_p50_ms"), (0.3, "cloud_p99_ms")):
        right.bar(x + offset, [float(r[key]) for r in rows], 0.3, label=key)  # type: ignore[arg-type]
    right.axhline(period_ms + 100, color="grey", linestyle="--", label="T + 100 ms")
    right.set_xticks(x, labels)
    right.set_ylabel("capture to result, ms")
    right.legend()
    fig.suptitle("2 sites x 4 cameras: bridged site brokers vs one broker")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    with Progress(transient=True) as progress:
        for layout in ("one-broker", "bridged"):
            rows.append(await run(layout, args, progress))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--cut", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=4, help="cameras per site")
    parser.add_argument("--period-ms", type=int, default=500)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = asyncio.run(main_async(args))
    write_csv(args.out / "sites.csv", rows)
    plot(args.out / "sites.png", rows, args.period_ms)
    table = Table(title=f"2 sites x {args.cameras} cameras, T = {args.period_ms} ms")
    table.add_column("")
    for r in rows:
        table.add_column(str(r["layout"]), justify="right")
    for key in rows[0]:
        if key != "layout":
            table.add_row(key, *(str(r.get(key, "")) for r in rows))
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
