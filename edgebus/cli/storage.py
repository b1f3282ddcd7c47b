"""The stores: `query`, `audit`, `bench sync`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgebus.cli.app import app, bench_app
from edgebus.cli.common import (
    RUNTIME_ERROR,
    BrokerOption,
    ConfigOption,
    SiteOption,
    err_console,
    fail,
    int_list,
    one_line_errors,
    settings_from,
    setup_logging,
    tool_bus,
    tool_settings,
)

PG_BENCH_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _query(
    table: str,
    nodes: list[str] | None,
    since: str | None,
    fmt: str,
    fresh: bool,
    timeout: float,
    store_url: str | None,
    broker: str | None,
    site: str | None,
    config: Path | None,
) -> None:
    from edgebus.storage import query
    from edgebus.storage.runtime import global_store_url
    from edgebus.topics import check_segment

    with one_line_errors():
        query.check_table(table)
        query.check_format(fmt)
        for node in nodes or []:
            check_segment(node, "--node")  # a node id, not a pattern
        since_ts = query.parse_since(since, time.time())
        settings = tool_settings(config, site=site, broker=broker, global_store_url=store_url)
        setup_logging("error")
        url = global_store_url(settings)
        result = query.read_global(url, table, nodes or [], since_ts)
        if fresh:
            asked = nodes or query.known_nodes(url)

            async def main() -> None:
                bus = tool_bus(settings, "query")
                await bus.start(timeout=5)
                try:
                    await query.fetch_fresh(bus, result, asked, since_ts, timeout)
                finally:
                    await bus.close(flush_timeout=0)

            asyncio.run(main())
            for node_name in result.unanswered:
                err_console.print(
                    f"warning: node {node_name} did not answer within {timeout:g} s; "
                    "its unsynced rows are not shown",
                    markup=False,
                )
        print(query.render(result, fmt))


NodesOption = Annotated[
    list[str] | None, typer.Option("--node", "-n", help="Only this node (repeatable).")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="30s, 15m, 2h, 7d, an ISO time or epoch seconds.")
]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")]
FreshOption = Annotated[
    bool, typer.Option("--fresh", help="Also ask each node for rows not yet synced.")
]
FreshTimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each node (--fresh).")
]
StoreUrlOption = Annotated[
    str | None,
    typer.Option("--store-url", help="Global store URL (default: SQLite under data_dir)."),
]


@app.command("query")
def query_rows(
    table: Annotated[str, typer.Argument(help="results, frames, events or node_status.")],
    node: NodesOption = None,
    since: SinceOption = None,
    fmt: FormatOption = "table",
    fresh: FreshOption = False,
    timeout: FreshTimeoutOption = 3.0,
    store_url: StoreUrlOption = None,
    broker: BrokerOption = None,
    site: SiteOption = None,
    config: ConfigOption = None,
) -> None:
    """Read rows from the global store; --fresh also asks the nodes for rows not yet
    synced."""
    _query(table, node, since, fmt, fresh, timeout, store_url, broker, site, config)


@app.command("audit")
def audit_stores(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the local stores are (<data_dir>/stores)."),
    ] = None,
    store_url: StoreUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Check that every frame has exactly one record (a result or a dropped row) and every
    local row is in the global store; exits 1 if anything is lost or duplicated."""
    from edgebus import audit_view
    from edgebus.storage.audit import audit, local_store_paths
    from edgebus.storage.runtime import global_store_url

    with one_line_errors():
        overrides = {"data_dir": str(data_dir) if data_dir is not None else None}
        settings = settings_from(config, global_store_url=store_url, **overrides)
        setup_logging("error")
        root = Path(settings.data_dir)
        if not root.is_dir():
            fail(f"--data-dir {str(root)!r}: no such directory")
        paths = local_store_paths(root)
        url = global_store_url(settings)
        if not paths and not store_url and not (root / "global.sqlite3").is_file():
            fail(f"--data-dir {str(root)!r}: holds no edgebus stores")
        report = audit(paths, url)
        if as_json:
            print(audit_view.as_json(report))
        else:
            audit_view.render(report, Console())
    if not report.ok:
        raise typer.Exit(RUNTIME_ERROR)


@bench_app.command("sync")
def bench_sync(
    rows: Annotated[int, typer.Option(min=1000, help="Rows per configuration.")] = 20_000,
    nodes: Annotated[str, typer.Option(help="Comma-separated node counts.")] = "1,10",
    targets: Annotated[str, typer.Option(help="sqlite and/or postgresql.")] = "sqlite,postgresql",
    postgres_url: Annotated[str, typer.Option(help="PostgreSQL server for the target.")] = (
        PG_BENCH_URL
    ),
    broker: BrokerOption = None,
    out: Annotated[Path | None, typer.Option(help="Also write bench_sync.csv here.")] = None,
) -> None:
    """Rows/s and p99 lag of the store sync over MQTT, against a direct bulk insert."""
    from edgebus.bench import sync as bench
    from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary

    with one_line_errors():
        target_list = [t.strip() for t in targets.split(",") if t.strip()]
        unknown = sorted(set(target_list) - {"sqlite", "postgresql"})
        if unknown or not target_list:
            fail(f"--targets {targets!r}: expected sqlite and/or postgresql")
        node_counts = int_list(nodes, "--nodes")
        if "postgresql" in target_list:
            bench.check_postgres(postgres_url)
        if broker is None and mosquitto_binary() is None:
            fail("no --broker given and the mosquitto binary is not installed")
        setup_logging("error")
        console = Console()
        local = LocalMosquitto() if broker is None else None
        url = broker if local is None else local.start().url
        assert url is not None  # one of the two
        try:
            results = bench.run_sync_bench(
                url, target_list, node_counts, rows, postgres_url,
                lambda what: console.print(f"[dim]{what}[/dim]"),
            )  # fmt: skip
        finally:
            if local is not None:
                local.__exit__(None, None, None)
        table = Table(title=f"store sync over MQTT ({url}), {rows:,} rows per run")
        for column in ("target", "nodes", "rows/s", "p50 lag ms", "p99 lag ms",
                       "direct bulk rows/s", "bus ÷ direct"):  # fmt: skip
            table.add_column(column, justify="left" if column == "target" else "right")
        for r in results:
            table.add_row(
                r.target, str(r.nodes), f"{r.rows_per_s:,.0f}", f"{r.p50_lag_ms:.0f}",
                f"{r.p99_lag_ms:.0f}", f"{r.direct_rows_per_s:,.0f}", f"{r.ratio:.2f}",
            )  # fmt: skip
        console.print(table)
        if out is not None:
            bench.write_csv(out / "bench_sync.csv", results)
            console.print(f"wrote {out / 'bench_sync.csv'}")
