"""The typer application, its command groups, `--version`, and `main()`: usage errors
as one `error:` line."""

from __future__ import annotations

from typing import Annotated

import typer

from edgebus.cli.common import INPUT_ERROR, err_console

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


def _print_version(value: bool) -> None:
    if value:
        from edgebus import __version__

        print(f"edgebus {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """asyncio middleware for edge AI over MQTT."""


app.add_typer(bench_app, name="bench")
app.add_typer(experiment_app, name="experiment")
app.add_typer(train_app, name="train")


def main() -> None:
    """The `edgebus` command: a usage error is one `error:` line naming the command and
    the input, exit code 2, rather than a multi-line usage box."""
    from typer.exceptions import Abort, TyperException

    try:
        code = app(prog_name="edgebus", standalone_mode=False)
    except Abort:
        err_console.print("error: interrupted", markup=False)
        raise SystemExit(130) from None
    except TyperException as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `edgebus` or `edgebus qos`
            # typer's NoArgsIsHelpError prints the help through show(), which its base
            # TyperException, as typed, lacks.
            exc.show()  # type: ignore[attr-defined]
        else:
            where = f"{context.command_path}: " if context is not None else ""
            err_console.print(f"error: {where}{exc.format_message()}", markup=False)
        raise SystemExit(getattr(exc, "exit_code", INPUT_ERROR)) from None
    raise SystemExit(code if isinstance(code, int) else 0)
