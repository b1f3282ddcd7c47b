"""What every command shares: one error idiom (`fail`, `one_line_errors`), settings
for nodes and tools, logging, the common options, and small parsers."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TextIO

import typer
from rich.console import Console

if TYPE_CHECKING:
    from edgebus.broker.bus import Bus
    from edgebus.config import Settings


# --- errors: one line, no traceback --------------------------------------------------

INPUT_ERROR = 2
RUNTIME_ERROR = 1
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = INPUT_ERROR) -> NoReturn:
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the project's expected failures into `error: ...` and an exit code."""
    from edgebus.broker.address import BrokerUrlError
    from edgebus.broker.bus import BusClosed, OutgoingQueueFull, RequestFailed, RequestTimeout
    from edgebus.broker.embedded import EmbeddedBrokerError
    from edgebus.broker.transport import ConnectFailed
    from edgebus.config import ConfigError
    from edgebus.errors import LaunchError, NodeFailed
    from edgebus.messages import DecodeError
    from edgebus.storage.errors import GlobalStoreError, QueryInputError, StorageError
    from edgebus.topics import TopicError

    try:
        yield
    except (ConfigError, BrokerUrlError, DecodeError, TopicError, EmbeddedBrokerError) as exc:
        fail(str(exc), INPUT_ERROR)
    except (GlobalStoreError, QueryInputError) as exc:
        fail(str(exc), INPUT_ERROR)
    except StorageError as exc:
        fail(str(exc), RUNTIME_ERROR)
    except (ConnectFailed, RequestTimeout, RequestFailed, OutgoingQueueFull, BusClosed) as exc:
        fail(str(exc), RUNTIME_ERROR)
    except (LaunchError, NodeFailed) as exc:
        fail(str(exc), RUNTIME_ERROR)
    except OSError as exc:  # a results folder that cannot be made, a file that cannot be read
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", RUNTIME_ERROR)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def results_dir(out: Path) -> Path:
    """Make an experiment's results folder up front: one line if it cannot be, rather than
    a traceback after the run."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out {str(out)!r}: cannot create the results folder: {exc.strerror}",
             RUNTIME_ERROR)  # fmt: skip
    return out


def settings_from(config: Path | None, **flags: object) -> Settings:
    from edgebus.config import load_settings

    return load_settings(config, flags)


def tool_settings(config: Path | None, **flags: object) -> Settings:
    """Settings for a tool that talks to a fleet. Unless a broker is configured (flag,
    environment or config file), a running `edgebus up` of the same data directory
    supplies its broker and site (see fleet_file.py)."""
    import dataclasses

    from edgebus.config import is_configured
    from edgebus.fleet_file import running_fleet

    settings = settings_from(config, **flags)
    if is_configured("broker", config, flags):
        return settings
    fleet = running_fleet(Path(settings.data_dir))
    if fleet is None:
        return settings
    site = settings.site if is_configured("site", config, flags) else fleet.site
    protocol = settings.protocol if is_configured("protocol", config, flags) else fleet.protocol
    return dataclasses.replace(settings, broker=fleet.broker, site=site, protocol=protocol)


def tool_bus(settings: Settings, purpose: str) -> Bus:
    """A bus for a short-lived CLI tool, with a client id that cannot clash with a node's."""
    import dataclasses

    from edgebus.actor.connect import bus_for

    return bus_for(dataclasses.replace(settings, node_id=f"{purpose}-{settings.node_id}"))


class _CurrentStderr(logging.StreamHandler):
    """Writes to sys.stderr as it is at each record, not as it was at set-up: while `up`
    shows its live view, rich puts a proxy there that prints above the table."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: str) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (flat keys, see the README)."),
]
BrokerOption = Annotated[
    str | None,
    typer.Option("--broker", "-b", help="Broker URL: mqtt://[user:pass@]host:port or mqtts://…"),
]
SiteOption = Annotated[str | None, typer.Option("--site", help="Site name in topics.")]
ThreadsOption = Annotated[int, typer.Option(min=1, max=16, help="torch threads.")]


def model_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What training and model loading raise for bad input, plus `more`."""
    from edgebus.codecs.errors import CodecError
    from edgebus.ml.errors import MLError

    return (CodecError, MLError, *more)


def wide_console() -> Console:
    # Wide tables when piped, so CSV-sized columns are not truncated.
    return Console(width=None if sys.stdout.isatty() else 160)


def int_list(value: str, flag: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not items or min(items) <= 0:
        raise typer.BadParameter(f"{flag}: expected positive integers, got {value!r}")
    return items


def assets_option(path: Path | None) -> Path | None:
    if path is not None and not path.is_dir():
        fail(f"--assets {path}: expected a folder with trained models")
    return path
