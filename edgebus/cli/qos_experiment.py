"""`edgebus experiment qos`: the QoS orchestrator paper's tables on one data set, then live
model switching over a broker."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from edgebus.cli.app import experiment_app
from edgebus.cli.common import RUNTIME_ERROR, fail, model_errors, results_dir, wide_console
from edgebus.cli.qos import PoolOption, _pool, parse_rate

if TYPE_CHECKING:
    from edgebus.experiments.qos import QosExperiment

DATASETS = ("fashion-mnist", "accelerometer", "shapes28")
# The paper's numbers to print beside ours (Fashion-MNIST, Sec. 6.1.2 and Tables 3-4).
PAPER_SAVING_PCT = {"ECO": 69.0, "ECCD": 69.0}
PAPER_GAIN_PCT = {"ECO": 32.0}


@experiment_app.command("qos")
def experiment_qos(
    out: Annotated[Path, typer.Option(help="Results folder (CSV + PNG).")] = Path("results/qos"),
    data: Annotated[
        str, typer.Option(help="fashion-mnist (the paper's), accelerometer or shapes28.")
    ] = "fashion-mnist",
    preset: Annotated[
        str, typer.Option(help="quick (a minute, for CI) or full (the committed figures).")
    ] = "full",
    pool: PoolOption = None,
    changes: Annotated[
        int | None, typer.Option(min=2, help="Live QoS changes (default: the preset's).")
    ] = None,
    sweep_all: Annotated[
        bool | None,
        typer.Option(help="Also train every d (Table 3 'all'; default: the full preset does)."),
    ] = None,
    bandwidth: Annotated[str, typer.Option(help="Emulated link for job cost.")] = "200kbps",
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker", "-b", help="Broker for the live run (default: an embedded amqtt broker)."
        ),
    ] = None,
    prefetch: Annotated[
        bool, typer.Option(help="Nodes fetch every pool model before the live run.")
    ] = False,
) -> None:
    """Accuracy by compression rate (Fig. 11), search cost (Table 3), data savings (Table 4),
    job cost (Eqs. 7-9), live switching."""
    from edgebus.broker.address import BrokerUrlError, parse_broker_url
    from edgebus.experiments import qos

    if data not in DATASETS:
        fail(f"--data: expected one of {', '.join(DATASETS)}, got {data!r}")
    if preset not in qos.PRESETS:
        fail(f"--preset: expected one of {', '.join(qos.PRESETS)}, got {preset!r}")
    rate = parse_rate(bandwidth)
    if broker is not None:
        try:
            parse_broker_url(broker)
        except BrokerUrlError as exc:
            fail(f"--broker: {exc}")
    loaded = _pool(pool)
    results_dir(out)
    console = wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("experiment qos", total=None)
            result = qos.run(
                out, loaded.root, data, qos.PRESETS[preset], rate,
                lambda what: bar.update(task, description=what), broker_url=broker,
                prefetch=prefetch, sweep_all=sweep_all, changes=changes,
            )  # fmt: skip
    except model_errors(ValueError) as exc:
        fail(str(exc), RUNTIME_ERROR)
    _print(console, result, rate, out, prefetch)


def _print(console, result: QosExperiment, rate: float, out: Path, prefetch: bool) -> None:
    import numpy as np

    from edgebus.experiments.qos_accuracy import BASELINES, CONFIGURATIONS

    table = Table(title=f"test accuracy by compression rate (Fig. 11), {result.data}")
    rates = sorted({r.rate_pct for r in result.accuracy.rows if r.configuration != "CO"})
    table.add_column("config")
    for r in rates:
        table.add_column(f"{r:g} %", justify="right")
    co = next(r for r in result.accuracy.rows if r.configuration == "CO")
    table.add_row("CO (raw)", *[f"{co.accuracy:.3f}"] * len(rates))
    for configuration in (*CONFIGURATIONS, *BASELINES):
        table.add_row(configuration, *[
            f"{result.accuracy.accuracy(configuration, r):.3f}" for r in rates
        ])  # fmt: skip
    console.print(table)
    table = Table(title=f"search cost (ECO on {result.data}, small recipe; Table 3)")
    for column in ("strategy", "models", "seconds", "chosen d", "its accuracy", "target"):
        table.add_column(column, justify="right")
    for s in result.searches:
        at = next((t.qos for t in s.trials if t.d == s.chosen_d), float("nan"))
        table.add_row(s.strategy, str(s.models_trained), f"{s.seconds:.1f}", str(s.chosen_d),
                      f"{at:.3f}", f"{s.target:.3f}")  # fmt: skip
    console.print(table)
    jobs = result.jobs
    table = Table(title=f"{jobs[0].frames} frames, link {rate:,.0f} bit/s (Table 4, Eqs. 7-9)")
    for column in ("config", "d", "payload B", "message B", "saving %", "paper", "E ms", "D ms",
                   "C ms", "T ms", "C_T s", "E_a %", "paper E_a", "accuracy"):  # fmt: skip
        table.add_column(column, justify="right")
    for j in jobs:
        paper_saving = PAPER_SAVING_PCT.get(j.configuration)
        paper_gain = PAPER_GAIN_PCT.get(j.configuration)
        table.add_row(j.configuration, str(j.d), str(j.payload_bytes), str(j.message_bytes),
                      f"{j.saving_pct:.1f}", "-" if paper_saving is None else f"{paper_saving:g}",
                      f"{j.encode_ms:.3f}", f"{j.decode_ms:.3f}", f"{j.classify_ms:.3f}",
                      f"{j.transfer_ms:.1f}", f"{j.total_s:.2f}", f"{j.gain_vs_co_pct:.1f}",
                      "-" if paper_gain is None else f"{paper_gain:g}",
                      f"{j.accuracy:.2f}")  # fmt: skip
    console.print(table)
    live = result.live
    latencies = live.latencies()
    console.print(
        f"live ({live.broker}, pool {result.pool.dataset}): {len(live.rows)} switches, "
        f"{live.timeouts} without every ack; latency p50 {np.percentile(latencies, 50):.1f} ms, "
        f"p99 {np.percentile(latencies, 99):.1f} ms, max {latencies.max():.1f} ms; "
        f"{live.fetches} bundles fetched; frames sent {live.frames_sent}, decoded "
        f"{live.frames_decoded} (2 receivers), wrong-model {live.wrong_model}, rejected "
        f"{live.rejected}"
    )
    if prefetch:
        console.print(f"prefetch of the whole pool by 3 nodes: {live.fetch_seconds:.2f} s")
    console.print(
        f"wrote {out}/accuracy_by_rate.csv, search_cost.csv, search_trials.csv, job_cost.csv, "
        "live_switching.csv, qos.png"
    )
