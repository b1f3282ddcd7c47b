"""Reproducing the papers' figures: `experiment offloading|scheduling|pnc-rate|offload`
(`experiment qos` is with the QoS commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from edgebus.cli.app import experiment_app
from edgebus.cli.common import (
    BrokerOption,
    ThreadsOption,
    assets_option,
    fail,
    int_list,
    model_errors,
    one_line_errors,
    results_dir,
    settings_from,
    setup_logging,
    wide_console,
)


@experiment_app.command("offloading")
def experiment_offloading(
    out: Annotated[Path, typer.Option(help="Folder for CSV, PNGs and summary.")] = Path(
        "results/offloading"
    ),
    quick: Annotated[bool, typer.Option(help="The < 10 min preset.")] = False,
    costs: Annotated[Path | None, typer.Option(help="Costs npz (default: shipped).")] = None,
    figures: Annotated[str, typer.Option(help="Comma-separated subset, e.g. fig5_rprob.")] = "",
    targets: Annotated[bool, typer.Option(help="Also measure the issue's targets.")] = True,
    threads: ThreadsOption = 1,
    dqn_folder: Annotated[
        Path | None,
        typer.Option(
            help="DQN cards trained on these costs (default: the shipped ones); e.g. "
            "edgebus/assets/fashion with the Fashion-MNIST costs."
        ),
    ] = None,
    data: Annotated[
        str,
        typer.Option(
            help="shapes, or fashion-mnist: the costs and DQNs shipped for the Fashion-MNIST "
            "weak/strong pair (unless --costs or --dqn-folder say otherwise)."
        ),
    ] = "shapes",
) -> None:
    """Offloading under a token bucket in simulation (paper Figs. 5, 6, 8, 9, 12) and the
    issue's target orderings with the shipped DQNs."""
    from dataclasses import replace

    from edgebus.experiments import offloading
    from edgebus.policies.runtime import PAIR_ASSETS, assets_folder

    weak = {"shapes": "weak", "fashion-mnist": "fashion_weak"}.get(data)
    if weak is None:
        fail(f"--data: expected shapes or fashion-mnist, got {data!r}")
    if data != "shapes":
        costs_name, folder = PAIR_ASSETS[weak]
        costs = costs or assets_folder() / costs_name
        dqn_folder = dqn_folder or assets_folder() / folder
    if dqn_folder is not None and not dqn_folder.is_dir():
        fail(f"--dqn-folder {dqn_folder}: expected a folder of DQN cards")
    preset = replace(
        offloading.QUICK if quick else offloading.FULL, threads=threads, dqn_folder=dqn_folder
    )
    known = sorted({p.figure for p in offloading.points(preset)})
    chosen = [f.strip() for f in figures.split(",") if f.strip()] or None
    for f in chosen or []:
        if f not in known:
            fail(f"--figures {f!r}: expected some of {', '.join(known)}")
    console = wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("offloading", total=offloading.steps(preset, chosen, targets))
            report = offloading.run(
                out, preset, costs, chosen,
                lambda what: bar.update(task, advance=1, description=what), targets,
            )  # fmt: skip
    except model_errors(ValueError) as exc:
        fail(str(exc))
    names = ("lower_bound", "baseline", "mdp", "dqn", "clairvoyant")
    table = Table(title=f"average loss per image ± s.e., {out / 'offloading.csv'}")
    for column in ("figure", "series", "x", "weak", "strong", *names, "DQN from"):
        table.add_column(column, justify="left" if column in ("figure", "series") else "right")
    for r in report.rows + report.targets:
        cells = [
            f"{r.losses[k][0]:.4f}±{r.losses[k][1]:.4f}" if k in r.losses else "-"
            for k in ("weak_only", "strong_only", *names)
        ]
        table.add_row(r.figure, r.series, f"{r.x_name}={r.x:g}", *cells, r.dqn_source)
    console.print(table)
    for check, ok in report.checks.items():
        console.print(f"{'met' if ok else 'NOT met'}: {check}")
    console.print(f"{report.seconds:.0f} s; wrote {out}/offloading.csv, offloading_*.png")


@experiment_app.command("scheduling")
def experiment_scheduling(
    out: Annotated[Path, typer.Option(help="Folder for CSVs and PNGs.")] = Path(
        "results/scheduling"
    ),
    quick: Annotated[bool, typer.Option(help="The few-minute preset.")] = False,
    parts: Annotated[str, typer.Option(help="Comma-separated: ents, jstsh, edgesplit.")] = (
        "ents,jstsh,edgesplit"
    ),
) -> None:
    """Collaborative edge scheduling in discrete-event simulation (Zhang thesis): ENTS
    (Ch. 3), JSTSH (Ch. 5) and EdgeSplit (Ch. 4) figure families, solver runtimes and the
    issue's targets."""
    from importlib import import_module

    known = ("ents", "jstsh", "edgesplit")
    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    for part in chosen:
        if part not in known:
            fail(f"--parts {part!r}: expected some of {', '.join(known)}")
    if not chosen:
        fail(f"--parts: expected some of {', '.join(known)}")
    results_dir(out)
    modules = {p: import_module(f"edgebus.experiments.scheduling_{p}") for p in chosen}
    console = wide_console()
    reports = []
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("scheduling", total=sum(m.steps(quick) for m in modules.values()))
            for part, module in modules.items():
                reports.append(
                    module.run(
                        out / part, quick, lambda what, p=part: bar.update(
                            task, advance=1, description=f"{p}: {what}"
                        ),
                    )
                )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    for report in reports:
        if report.rows:
            table = Table(title=f"{report.name} ({report.seconds:.0f} s)")
            for column in report.rows[0]:
                table.add_column(str(column), justify="right")
            for row in report.rows:
                table.add_row(*(_cell(v) for v in row.values()))
            console.print(table)
        for check, ok in report.checks.items():
            console.print(f"{'met' if ok else 'NOT met'}: {check}")
    files = [f for r in reports for f in r.files]
    console.print(f"wrote {len(files)} files under {out}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@experiment_app.command("pnc-rate")
def experiment_pnc_rate(
    out: Annotated[Path, typer.Option(help="Folder for CSV, PNG and summary.")] = Path(
        "results/pnc_rate"
    ),
    images: Annotated[int, typer.Option(min=1, help="Test images (of the recorded split).")] = 1000,
    budgets: Annotated[str, typer.Option(help="Comma-separated byte budgets.")] = "",
    assets: Annotated[Path | None, typer.Option(help="Models folder (default: shipped).")] = None,
    threads: Annotated[int, typer.Option(min=1, max=16, help="onnxruntime threads.")] = 2,
    data: Annotated[
        str,
        typer.Option(
            help="shapes (64 px), fashion-mnist (28 px, its own models) or photos (224 px, "
            "imagenet_pnc224; scored by agreement with the ImageNet classifier)."
        ),
    ] = "shapes",
) -> None:
    """Accuracy against byte budget for PNC, fixed-rate AEs, progressive JPEG, WebP and JPEG
    (PNC paper, Fig. 2)."""
    from edgebus.experiments import pnc_rate

    if data not in pnc_rate.DATA:
        fail(f"--data: expected one of {', '.join(pnc_rate.DATA)}, got {data!r}")
    defaults = {"fashion-mnist": pnc_rate.FASHION_BUDGETS, "photos": pnc_rate.PHOTO_BUDGETS}.get(
        data, pnc_rate.DEFAULT_BUDGETS
    )
    budget_list = int_list(budgets, "--budgets") if budgets else list(defaults)
    console = wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("pnc-rate", total=pnc_rate.steps(data))
            curves = pnc_rate.run(
                out, images, budget_list, assets_option(assets), threads,
                lambda what: bar.update(task, advance=1, description=what), data,
            )  # fmt: skip
    except model_errors() as exc:
        fail(str(exc))
    table = Table(title=f"top-1 accuracy (%) against byte budget, {out / 'pnc_rate.csv'}")
    table.add_column("budget B", justify="right")
    for c in curves:
        table.add_column(c.method, justify="right")
    for j, b in enumerate(curves[0].budgets):
        table.add_row(str(b), *(f"{100 * c.top1[j]:.1f}" for c in curves))
    console.print(table)
    summary = json.loads((out / "pnc_rate_summary.json").read_text())
    worst = summary["max_gap_best_fixed_minus_pnc_top1"]
    gap = "no fixed-rate comparators" if worst is None else f"{100 * worst:.2f} points"
    console.print(
        f"max(best fixed-rate − PNC) top-1: {gap}; PNC beats pjpeg q30 at the lowest third: "
        f"{summary['pnc_beats_pjpeg_q30_lowest_third']}"
    )
    if data == "photos":
        console.print("photos: top-1 is agreement with the classifier's answer on the "
                      "uncompressed view, not labelled accuracy")  # fmt: skip
    console.print(f"wrote {out / 'pnc_rate.csv'}, {out / 'pnc_rate.png'}")


@experiment_app.command("offload")
def experiment_offload(
    out: Annotated[Path, typer.Option(help="Folder for CSV and PNGs.")] = Path("results/offload"),
    codecs: Annotated[
        str | None,
        typer.Option(
            help="pnc[:model], pjpeg[Q], webp[Q][mM], jpeg[Q], raw (default: "
            "pnc,pjpeg,webp0,webp10,webp20; on fashion-mnist pnc:fashion_pnc28 for pnc)."
        ),
    ] = None,
    periods: Annotated[str, typer.Option(help="Frame periods T in ms.")] = "300,500,700",
    scenarios: Annotated[
        str | None,
        typer.Option(
            help="Link traces: presets (scaled as light:0.25), B/s or .csv (default: "
            "none,light,heavy,switching; on fashion-mnist scaled to 28 px frames)."
        ),
    ] = None,
    chunk_bytes: Annotated[str, typer.Option(help="Chunk sizes; 0 = one unit per chunk.")] = "0",
    frames: Annotated[int, typer.Option(help="Frames per camera (held-out test images).")] = 200,
    cameras_at_once: Annotated[
        int, typer.Option(help="Cameras run concurrently (more is faster, until the CPU lags).")
    ] = 10,
    broker: BrokerOption = None,
    data: Annotated[
        str,
        typer.Option(
            help="shapes (64 px procedural test frames) or fashion-mnist (the 28 px test "
            "images, the Fashion-MNIST classifier at the edge)."
        ),
    ] = "shapes",
) -> None:
    """Deadline-driven offloading over a real broker in real time (PNC paper, Figs. 6-10)."""
    from edgebus.experiments import offload
    from edgebus.experiments import offload_options as options

    fashion = data == "fashion-mnist"
    if data not in ("shapes", "fashion-mnist"):
        fail(f"--data: expected shapes or fashion-mnist, got {data!r}")
    codec_list = codecs.split(",") if codecs else list(
        options.FASHION_CODECS if fashion else options.DEFAULT_CODECS
    )  # fmt: skip
    scenario_list = scenarios.split(",") if scenarios else list(
        options.FASHION_SCENARIOS if fashion else options.DEFAULT_SCENARIOS
    )  # fmt: skip
    with one_line_errors():
        base = settings_from(None, heartbeat_s=5.0, **(options.FASHION_SETTINGS if fashion else {}))
        setup_logging("warning")
        try:
            offload.run_and_report(
                base, out, codec_list, int_list(periods, "--periods"), scenario_list,
                offload.parse_chunk_sizes(chunk_bytes), frames, broker, wide_console(),
                cameras_at_once,
            )  # fmt: skip
        except offload.OffloadInputError as exc:
            fail(str(exc))
