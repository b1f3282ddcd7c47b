"""Benchmarks: `bench bus` and `bench codecs` (`bench sync` is with the stores)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.cli.app import bench_app
from edgebus.cli.common import (
    BrokerOption,
    assets_option,
    fail,
    int_list,
    model_errors,
    one_line_errors,
    wide_console,
)


@bench_app.command("bus")
def bench_bus(
    broker: BrokerOption = None,
    clients: Annotated[
        str, typer.Option(help="Comma list of mosquitto-c, gmqtt, aiomqtt, paho.")
    ] = "mosquitto-c,gmqtt,paho,aiomqtt",
    sizes: Annotated[str, typer.Option(help="Payload sizes in bytes.")] = "64,4096",
    qos: Annotated[str, typer.Option(help="QoS levels.")] = "0,1",
    count_small: Annotated[int, typer.Option(help="Messages per run at 64 B.", min=100)] = 50_000,
    count_large: Annotated[int, typer.Option(help="Messages per run at 4 KiB.", min=100)] = 20_000,
    repeats: Annotated[int, typer.Option(min=1, help="Runs per cell; the median is kept.")] = 3,
    out: Annotated[Path, typer.Option(help="Results folder (CSV + PNG).")] = Path(
        "results/bench-bus"
    ),
) -> None:
    """msg/s and p50/p99 latency per MQTT client behind the Bus, against Mosquitto."""
    from edgebus.bench import bus as bench
    from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary
    from edgebus.broker.transport import client_names
    from edgebus.reports import bar_chart, write_csv

    with one_line_errors():
        try:
            names = [c.strip() for c in clients.split(",") if c.strip()]
            size_list = [int(s) for s in sizes.split(",")]
            qos_list = [int(q) for q in qos.split(",")]
        except ValueError:
            fail("--sizes and --qos take comma-separated integers")
        unknown = [c for c in names if c not in (*client_names(), bench.C_CLIENT)]
        if unknown:
            fail(
                f"--clients: unknown {', '.join(unknown)}; expected "
                f"{', '.join((bench.C_CLIENT, *client_names()))}"
            )
        if any(q not in (0, 1) for q in qos_list) or any(s < bench.STAMP + 1 for s in size_list):
            fail(f"--qos takes 0 or 1 and --sizes at least {bench.STAMP + 1} bytes")
        if bench.C_CLIENT in names and not bench.c_clients_available():
            fail("mosquitto_pub/mosquitto_sub are not installed; drop mosquitto-c from --clients")
        counts = {s: (count_small if s <= 1024 else count_large) for s in size_list}
        console = Console()
        local = None
        if broker is None:
            if mosquitto_binary() is None:
                fail("no --broker given and the mosquitto binary is not installed")
            local = LocalMosquitto().start()
            url = local.url
        else:
            url = broker
        total = repeats * len(size_list) * len(qos_list) * len(names)
        try:
            with Progress(console=console) as progress:
                task = progress.add_task("bench bus", total=total)

                def advance(cell: bench.Cell) -> None:
                    progress.update(
                        task, advance=1, description=f"{cell.client} {cell.size} B qos{cell.qos}"
                    )

                results = bench.run_benchmark(
                    url, names, size_list, qos_list, counts, repeats, advance
                )
        finally:
            if local is not None:
                local.__exit__(None, None, None)
        rows = bench.as_rows(results)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "bench_bus.csv", rows)
        bar_chart(out / "bench_bus.png", rows, "msg_per_s", "MQTT clients behind the Bus (msg/s)")
        table = Table(title=f"bus benchmark against Mosquitto ({url})")
        for column in ("client", "payload", "qos", "received", "msg/s", "× C", "p50 ms", "p99 ms"):
            table.add_column(column, justify="left" if column == "client" else "right")
        for row in rows:
            table.add_row(
                str(row["client"]),
                f"{row['size']} B",
                str(row["qos"]),
                f"{row['received']}/{row['sent']}",
                f"{row['msg_per_s']:,.0f}",
                f"{row['ratio_to_c']:.2f}",
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
            )
        console.print(table)
        console.print(f"wrote {out / 'bench_bus.csv'} and {out / 'bench_bus.png'}")


@bench_app.command("codecs")
def bench_codecs(
    sizes: Annotated[str, typer.Option(help="Comma-separated image sizes.")] = "64,224",
    images: Annotated[int, typer.Option(min=1, help="Images per size.")] = 30,
    repeats: Annotated[int, typer.Option(min=1, help="Passes over the images.")] = 3,
    assets: Annotated[Path | None, typer.Option(help="Models folder (default: shipped).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write bench_codecs.csv here.")] = None,
) -> None:
    """Single-thread encode time per image: PNC vs WebP m0/m6 q0/q20 vs progressive JPEG q30
    (PNC paper, Table I)."""
    from edgebus.experiments import codec_bench

    size_list = int_list(sizes, "--sizes")
    console = wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("bench codecs", total=codec_bench.METHODS_PER_SIZE * len(size_list))
            rows = codec_bench.bench(
                size_list, images, repeats, assets_option(assets),
                lambda what: bar.update(task, advance=1, description=what),
            )  # fmt: skip
    except model_errors() as exc:
        fail(str(exc))
    table = Table(title=f"encode time per image, 1 thread, {images} images x {repeats}")
    for column in ("size", "method", "mean ms", "median ms", "bytes", "÷ WebP m6 q20",
                   "÷ pjpeg q30", "paper Pi 4 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "method" else "right")
    for r in rows:
        table.add_row(
            str(r.image_size),
            r.method,
            f"{r.mean_ms:.3f}",
            f"{r.median_ms:.3f}",
            "-" if r.mean_bytes != r.mean_bytes else f"{r.mean_bytes:.0f}",  # NaN: no file
            f"{r.ratio_to_webp_m6_q20:.3f}",
            f"{r.ratio_to_pjpeg_q30:.3f}",
            "" if r.paper_pi4_ms is None else f"{r.paper_pi4_ms}",
        )
    console.print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        codec_bench.write_csv(out / "bench_codecs.csv", rows)
        console.print(f"wrote {out / 'bench_codecs.csv'}")
