"""The `edgebus` command line: a thin typer layer over the packages below it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="edgebus",
    help="asyncio middleware for edge AI over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Throughput and latency benchmarks.", no_args_is_help=True)
experiment_app = typer.Typer(help="Reproduce the papers' figures.", no_args_is_help=True)
train_app = typer.Typer(
    help="Train the shipped models (needs the `train` extra).", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
app.add_typer(experiment_app, name="experiment")
app.add_typer(train_app, name="train")
