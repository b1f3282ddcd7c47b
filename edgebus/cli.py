"""The `edgebus` command line: a thin typer layer over the packages below it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TextIO

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

if TYPE_CHECKING:
    from edgebus.broker.bus import Bus, Delivery
    from edgebus.config import Settings

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


# --- nodes -----------------------------------------------------------------------------


OffloadOption = Annotated[
    str | None,
    typer.Option(
        "--offload", help="Camera: off, never, always, baseline, mdp or dqn (token bucket)."
    ),
]
RateOption = Annotated[
    float | None, typer.Option("--rate", help="Camera offloading: tokens per frame slot r.")
]
BucketOption = Annotated[
    float | None, typer.Option("--bucket", help="Camera offloading: bucket depth b (tokens).")
]


@app.command()
def node(
    role: Annotated[str, typer.Option("--role", "-r", help="camera, edge, cloud or coordinator.")],
    node_id: Annotated[str | None, typer.Option("--id", help="Node id (default host-pid).")] = None,
    site: SiteOption = None,
    broker: BrokerOption = None,
    config: ConfigOption = None,
    period_ms: Annotated[
        int | None, typer.Option("--period-ms", help="Camera frame period.")
    ] = None,
    heartbeat: Annotated[
        float | None, typer.Option("--heartbeat", help="Heartbeat seconds.")
    ] = None,
    shared_group: Annotated[
        str | None,
        typer.Option("--shared-group", help="Edge: share frames with this $share group."),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option("--wait", min=0.0, help="Give up if the broker is unreachable this long (s)."),
    ] = None,
    codec: Annotated[
        str | None, typer.Option("--codec", help="Camera codec: pnc, pjpeg, webp, raw or qos.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Camera source: synthetic, folder:, video:, accelerometer."),
    ] = None,
    offload: OffloadOption = None,
    rate: RateOption = None,
    bucket: BucketOption = None,
    scheduled: Annotated[
        bool | None,
        typer.Option(
            "--scheduled/--unscheduled",
            help="Camera, edge: follow the coordinator's scheduling policy.",
        ),
    ] = None,
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Coordinator: off or jstsh.")
    ] = None,
) -> None:
    """Run one node until SIGINT/SIGTERM; it then flushes and publishes offline."""
    from edgebus.coordinator.node import CoordinatorNode
    from edgebus.launch import install_stop_signals
    from edgebus.nodes import CameraNode, CloudNode, EdgeNode

    with one_line_errors():
        settings = settings_from(
            config,
            role=role,
            node_id=node_id,
            site=site,
            broker=broker,
            frame_period_ms=period_ms,
            heartbeat_s=heartbeat,
            codec=codec,
            source=source,
            offload=offload,
            offload_rate=rate,
            offload_bucket=bucket,
            scheduled=scheduled,
            schedule=schedule,
        )
        setup_logging(settings.log_level)
        classes = {
            "camera": CameraNode,
            "edge": EdgeNode,
            "cloud": CloudNode,
            "coordinator": CoordinatorNode,
        }

        async def main() -> None:
            if settings.role == "edge":
                actor = EdgeNode(settings, shared_group=shared_group)
            else:
                actor = classes[settings.role](settings)
            install_stop_signals(actor.stop)
            await actor.run(connect_timeout=wait)

        asyncio.run(main())


@app.command()
def up(
    cameras: Annotated[int, typer.Option("--cameras", min=0, help="Number of cameras.")] = 2,
    duration: Annotated[float, typer.Option("--duration", min=0.1, help="Seconds to run.")] = 10.0,
    broker: BrokerOption = None,
    processes: Annotated[
        bool, typer.Option("--processes", help="Run cameras and the edge as subprocesses.")
    ] = False,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard")] = True,
    period_ms: Annotated[int | None, typer.Option("--period-ms")] = None,
    link: Annotated[
        str, typer.Option("--link", help="Camera uplink: a preset, B/s, a .csv, or off.")
    ] = "switching",
    codec: Annotated[str | None, typer.Option("--codec", help="Camera codec (pnc).")] = None,
    offload: OffloadOption = None,
    rate: RateOption = None,
    bucket: BucketOption = None,
    edges: Annotated[
        int, typer.Option("--edges", min=1, help="Edge nodes; more than one are scheduled.")
    ] = 1,
    sensors: Annotated[
        int,
        typer.Option(
            "--sensors",
            min=0,
            help="Accelerometer streams that follow the QoS orchestrator's model switches.",
        ),
    ] = 1,
    kill_edge: Annotated[
        float | None,
        typer.Option(
            "--kill-edge",
            min=0.0,
            help="With --processes: SIGKILL the last edge after this many seconds.",
        ),
    ] = None,
    site: SiteOption = None,
    config: ConfigOption = None,
) -> None:
    """Start a broker (unless --broker) and every role, show a live dashboard, then a summary."""
    from edgebus.config import is_configured
    from edgebus.launch import UpPlan, run_up

    with one_line_errors():
        # Under `up` the children's info lines would crowd the dashboard: warnings and
        # errors only, unless log_level is set.
        quiet = None if is_configured("log_level", config) else "warning"
        settings = settings_from(
            config,
            site=site,
            log_level=quiet,
            frame_period_ms=period_ms,
            heartbeat_s=1.0,
            link=link,
            codec=codec,
            offload=offload,
            offload_rate=rate,
            offload_bucket=bucket,
            **({"broker": broker} if broker else {}),
        )
        if broker:
            from edgebus.broker.address import parse_broker_url

            parse_broker_url(broker)
        setup_logging("warning")
        console = Console()  # off a terminal the summary prints as wide as it needs
        if kill_edge is not None and not (processes and edges > 1):
            fail("--kill-edge needs --processes and --edges 2 or more")
        plan = UpPlan(
            cameras=cameras, duration_s=duration, broker=broker, processes=processes,
            dashboard=dashboard, link=link, edges=edges, kill_edge_after_s=kill_edge,
            sensors=sensors,
        )  # fmt: skip
        totals = asyncio.run(run_up(settings, plan, console))
        console.print(
            "summary: "  # one line, however long: scripts read it
            + ", ".join(
                f"{key}={value:.1f}"
                if isinstance(value, float) and not value.is_integer()
                else f"{key}={int(value)}"
                for key, value in totals.items()
            ),
            soft_wrap=True,
        )


@app.command()
def broker(
    port: Annotated[
        int,
        typer.Option(
            "--port", "-p", min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one."
        ),
    ] = 1883,
    auth: Annotated[Path | None, typer.Option("--auth", help="amqtt password file.")] = None,
    acl: Annotated[Path | None, typer.Option("--acl", help="TOML ACL file.")] = None,
) -> None:
    """Run the embedded amqtt broker (MQTT 3.1.1) until SIGINT/SIGTERM."""
    from edgebus.broker.embedded import EmbeddedBroker
    from edgebus.launch import install_stop_signals

    with one_line_errors():
        setup_logging("warning")

        async def main() -> None:
            embedded = await EmbeddedBroker(port, auth, acl).start()
            Console().print(f"embedded broker listening on {embedded.url}")
            stop = asyncio.Event()
            install_stop_signals(stop.set)
            await stop.wait()
            await embedded.stop()

        asyncio.run(main())


@app.command("broker-user")
def broker_user(
    users_file: Annotated[Path, typer.Argument(help="amqtt password file to create or update.")],
    username: Annotated[str, typer.Argument()],
) -> None:
    """Add or replace a user in the embedded broker's password file (0600). The password is
    asked for at a prompt, or read from stdin when that is not a terminal; never a flag,
    which would leave it in the shell history and in `ps`."""
    import getpass

    from edgebus.broker.embedded import add_user, read_users

    with one_line_errors():
        read_users(users_file)  # a wrong file is reported before asking for a password
        if sys.stdin.isatty():
            password = getpass.getpass(f"password for {username}: ")
            if password != getpass.getpass("again: "):
                fail("the two passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        add_user(users_file, username, password)


# --- looking at the bus ------------------------------------------------------------------


def _render(delivery: Delivery, mode: str) -> str:
    from edgebus.messages import to_dict

    if delivery.message is not None:
        body = to_dict(delivery.message)
        if mode == "json":
            return json.dumps({"topic": delivery.topic, **body}, default=str)
        return f"{delivery.topic}  {body['type']}  " + json.dumps(
            {k: v for k, v in body.items() if k != "type"}, default=str
        )
    try:
        text = delivery.payload.decode("utf-8")
        shown = text if text.isprintable() else None
    except UnicodeDecodeError:
        shown = None
    foreign = {"text": shown} if shown is not None else {"hex": delivery.payload.hex()}
    if mode == "json":
        return json.dumps({"topic": delivery.topic, "type": None, **foreign})
    return f"{delivery.topic}  (not edgebus)  " + (
        shown if shown is not None else f"hex:{delivery.payload.hex()}"
    )


@app.command()
def sub(
    pattern: Annotated[str, typer.Argument(help="MQTT topic filter, e.g. edgebus/v1/lab/#.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    pretty: Annotated[bool, typer.Option("--pretty", help="Readable one-line form.")] = False,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1)] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.0, help="Stop after this many seconds without a message."),
    ] = None,
    broker: BrokerOption = None,
    config: ConfigOption = None,
) -> None:
    """Print messages on PATTERN, decoding edgebus payloads; others show as text or hex."""
    from edgebus.broker.matching import validate_filter

    if as_json and pretty:
        fail("--json and --pretty are exclusive")
    mode = "json" if as_json else "pretty"
    with one_line_errors():
        try:
            validate_filter(pattern)
        except ValueError as exc:
            fail(str(exc))
        settings = tool_settings(config, broker=broker)

        setup_logging("error")  # the outcome is reported as one line below

        async def main() -> None:
            bus = tool_bus(settings, "sub")
            await bus.start(timeout=5)
            seen = 0
            try:
                subscription = await bus.subscribe(pattern, qos=1, raw=True)
                while count is None or seen < count:
                    try:
                        delivery = await subscription.get(timeout)
                    except TimeoutError:
                        break
                    print(_render(delivery, mode), flush=True)
                    seen += 1
            finally:
                await bus.close(flush_timeout=0)

        asyncio.run(main())


# How long `pub` waits for the broker's acknowledgement of a QoS 1 or 2 message.
PUB_ACK_TIMEOUT_S = 5.0


@app.command()
def pub(
    topic: Annotated[str, typer.Argument(help="Topic to publish on.")],
    message_json: Annotated[
        str,
        typer.Option(
            "--json",
            help='The message as JSON, with "type", e.g. '
            '\'{"type": "qos_request", "requester": "cli", "accuracy": 0.9, '
            '"bandwidth_bps": 2e5}\'.',
        ),
    ],
    qos: Annotated[int, typer.Option("--qos", min=0, max=2)] = 1,
    retain: Annotated[bool, typer.Option("--retain")] = False,
    broker: BrokerOption = None,
    config: ConfigOption = None,
) -> None:
    """Publish one typed edgebus message given as JSON."""
    from edgebus.messages import DecodeError, from_dict

    with one_line_errors():
        try:
            data = json.loads(message_json)
        except json.JSONDecodeError as exc:
            fail(f"--json is not valid JSON: {exc}")
        try:
            message = from_dict(data)
        except DecodeError as exc:
            fail(f"--json: {exc}")
        if not topic or any(c in topic for c in "+#") or not topic.isprintable():
            fail(f"topic {topic!r} must be non-empty, printable and without wildcards")
        settings = tool_settings(config, broker=broker)

        setup_logging("error")  # the outcome is reported as one line below

        async def main() -> None:
            bus = tool_bus(settings, "pub")
            await bus.start(timeout=5)
            await bus.publish(topic, message, qos=qos, retain=retain)
            # close() flushes: it returns once the broker acknowledged (or the time is up).
            await bus.close(flush_timeout=PUB_ACK_TIMEOUT_S)
            if bus.stats.unacknowledged:
                fail(f"the broker did not acknowledge the publish to {topic} within "
                     f"{PUB_ACK_TIMEOUT_S:g} s", 1)  # fmt: skip
            if bus.refusals:
                # A QoS 0 publish has no acknowledgement, so only QoS 1 and 2 can say this.
                fail(str(bus.refusals[0]), 1)

        asyncio.run(main())


# Retained statuses arrive back to back after a subscription; this long without one
# means all of them are in.
NODES_QUIET_S = 0.5


@app.command()
def nodes(
    wait: Annotated[
        float,
        typer.Option("--wait", min=0.1, help="Seconds at most to collect retained status."),
    ] = 2.0,
    site: SiteOption = None,
    broker: BrokerOption = None,
    config: ConfigOption = None,
) -> None:
    """List nodes and their state from the retained status topics."""
    from rich.table import Table

    from edgebus.messages import Status

    with one_line_errors():
        settings = tool_settings(config, site=site, broker=broker)

        setup_logging("error")

        async def main() -> dict[str, Status]:
            bus = tool_bus(settings, "nodes")
            await bus.start(timeout=5)
            found: dict[str, Status] = {}
            loop = asyncio.get_running_loop()
            until = loop.time() + wait
            try:
                subscription = await bus.subscribe(bus.topics.statuses(), qos=1)
                # The broker sends the retained statuses at once. A running fleet also
                # republishes live ones every heartbeat, so waiting for silence would
                # never end: stop once retained ones stop coming, and by `wait` at most.
                last_retained = loop.time()
                with contextlib.suppress(TimeoutError):
                    while (now := loop.time()) < until and now - last_retained < NODES_QUIET_S:
                        quiet_until = min(until, last_retained + NODES_QUIET_S)
                        delivery = await subscription.get(quiet_until - now)
                        if delivery.retain:
                            last_retained = loop.time()
                        if isinstance(delivery.message, Status):
                            found[delivery.message.node] = delivery.message
            finally:
                await bus.close(flush_timeout=0)
            return found

        found = asyncio.run(main())
        table = Table(title=f"nodes at site {settings.site}")
        for column in ("node", "role", "state", "version", "capabilities", "since"):
            table.add_column(column)
        for status in sorted(found.values(), key=lambda s: (s.role, s.node)):
            since = time.strftime("%H:%M:%S", time.localtime(status.ts))
            table.add_row(
                status.node,
                status.role,
                f"{status.state}: {status.reason}" if status.reason else status.state,
                status.version,
                ", ".join(status.capabilities),
                since,
            )
        Console().print(table if found else f"no node has published status at site {settings.site}")


# --- storage ---

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
        node_counts = _int_list(nodes, "--nodes")
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


# --- benchmarks ------------------------------------------------------------------------


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


# --- codecs and training ---


def _model_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What training and model loading raise for bad input, plus `more`."""
    from edgebus.codecs.errors import CodecError
    from edgebus.ml.errors import MLError

    return (CodecError, MLError, *more)


def _wide_console() -> Console:
    # Wide tables when piped, so CSV-sized columns are not truncated.
    return Console(width=None if sys.stdout.isatty() else 160)


def _int_list(value: str, flag: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not items or min(items) <= 0:
        raise typer.BadParameter(f"{flag}: expected positive integers, got {value!r}")
    return items


def _assets_option(path: Path | None) -> Path | None:
    if path is not None and not path.is_dir():
        fail(f"--assets {path}: expected a folder with trained models")
    return path


@train_app.command("classifiers")
def train_classifiers(
    out: Annotated[Path, typer.Option(help="Folder for the ONNX models and cards.")] = Path(
        "edgebus/assets"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the procedural data and training.")] = 0,
    train_images: Annotated[int, typer.Option(min=10, help="Training images.")] = 12000,
    epochs: Annotated[int, typer.Option(min=0, help="Epochs per model; 0 = recipe.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the strong (edge) and weak (camera) classifiers and export them to ONNX."""
    from dataclasses import replace

    from edgebus.ml.train_classifiers import DEFAULT_RECIPES, DataRecipe
    from edgebus.ml.train_classifiers import train_and_export_classifiers as run_training

    recipes = tuple(replace(r, epochs=epochs) if epochs else r for r in DEFAULT_RECIPES)
    try:
        cards = run_training(out, DataRecipe(seed=seed, train=train_images), recipes, progress)
    except _model_errors() as exc:
        fail(str(exc))
    table = Table(title=f"classifiers in {out}")
    for column in ("model", "params", "test top-1", "test top-5", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for kind, card in cards.items():
        table.add_row(
            kind,
            f"{card['parameters']:,}",
            f"{100 * card['test_top1']:.2f}%",
            f"{100 * card['test_top5']:.2f}%",
            f"{card['train_seconds']:.0f}",
        )
    _wide_console().print(table)


def _train_autoencoders(
    which: str,
    out: Path,
    classifiers: Path,
    seed: int,
    image_size: int,
    stride: int,
    scale: float,
    train_images: int,
    distil: bool,
    threads: int,
    progress: bool,
    fixed_k: tuple[int, ...] = (2, 4, 6, 8, 10),
) -> None:
    from edgebus.ml.train_pnc import train_and_export

    try:
        cards = train_and_export(
            which, out, classifiers, seed, image_size, stride, 10, scale, train_images, distil,
            threads, progress, fixed_k,
        )  # fmt: skip
    except _model_errors() as exc:
        fail(str(exc))
    table = Table(title=f"{which} models in {out}")
    for column in ("model", "features", "bytes/unit (train)", "top-1 by kept features", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for card in cards:
        top1 = card.get("test", {}).get("top1_by_features", [])
        table.add_row(
            card["name"],
            "x".join(str(v) for v in card["feature_shape"]),
            f"{sum(card['mean_unit_bytes_train']) / len(card['mean_unit_bytes_train']):.1f}",
            " ".join(f"{100 * v:.0f}" for v in top1) or "-",
            f"{card['train_seconds']:.0f}",
        )
    _wide_console().print(table)


_AE_OUT = Annotated[Path, typer.Option(help="Folder for models, tables and cards.")]
_AE_CLF = Annotated[Path, typer.Option(help="Folder holding strong_classifier.json.")]
_AE_SIZE = Annotated[int, typer.Option(min=16, help="Image size in pixels.")]
_AE_STRIDE = Annotated[int, typer.Option(help="Total encoder stride: 2, 4, 7 or 8.")]
_AE_SCALE = Annotated[float, typer.Option(min=0.0001, help="Multiplier on training steps.")]
_AE_TRAIN = Annotated[int, typer.Option(min=10, help="Training images.")]
_AE_DISTIL = Annotated[bool, typer.Option(help="Run stage 2 (distillation).")]
_AE_THREADS = Annotated[int, typer.Option(min=1, max=16, help="torch threads.")]


@train_app.command("pnc")
def train_pnc(
    out: _AE_OUT = Path("edgebus/assets"),
    classifiers: _AE_CLF = Path("edgebus/assets"),
    seed: Annotated[int, typer.Option(help="Seed of the data split.")] = 0,
    image_size: _AE_SIZE = 64,
    stride: _AE_STRIDE = 4,
    scale: _AE_SCALE = 1.0,
    train_images: _AE_TRAIN = 12000,
    distil: _AE_DISTIL = True,
    threads: _AE_THREADS = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train PNC (stochastic taildrop, MSE then distillation) and ship encoder, decoder and
    Huffman tables. The 224 px timing model: --image-size 224 --stride 7 --no-distil."""
    _train_autoencoders(
        "pnc", out, classifiers, seed, image_size, stride, scale, train_images, distil,
        threads, progress,
    )  # fmt: skip


@train_app.command("fixed-rate")
def train_fixed_rate(
    out: _AE_OUT = Path("edgebus/assets"),
    classifiers: _AE_CLF = Path("edgebus/assets"),
    seed: Annotated[int, typer.Option(help="Seed of the data split.")] = 0,
    image_size: _AE_SIZE = 64,
    stride: _AE_STRIDE = 4,
    scale: _AE_SCALE = 1.0,
    train_images: _AE_TRAIN = 12000,
    distil: _AE_DISTIL = True,
    threads: _AE_THREADS = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    k: Annotated[str, typer.Option("--k", help="Feature counts to train.")] = "2,4,6,8,10",
) -> None:
    """Train the fixed-rate comparators (K = 2, 4, 6, 8, 10 features, no taildrop)."""
    fixed_k = tuple(_int_list(k, "--k"))
    _train_autoencoders(
        "fixed-rate", out, classifiers, seed, image_size, stride, scale, train_images, distil,
        threads, progress, fixed_k,
    )  # fmt: skip


@train_app.command("costs")
def train_costs(
    out: Annotated[Path, typer.Option(help="The costs npz to write.")] = Path(
        "edgebus/assets/offloading_costs_top1.npz"
    ),
    images: Annotated[int, typer.Option(min=8, help="Held-out images to score.")] = 30_000,
    k: Annotated[int, typer.Option("--k", min=1, max=10, help="Top-k loss.")] = 1,
    assets: Annotated[Path | None, typer.Option(help="Models folder (default: shipped).")] = None,
    threads: Annotated[int, typer.Option(min=1, max=16, help="onnxruntime threads.")] = 2,
) -> None:
    """Score the weak and strong classifiers on held-out images and fit the offloading metric:
    the costs npz (wcost, scost, metric and the fitted metric) that the offloading policies
    and cameras use."""
    from edgebus.experiments.offloading_costs import classifier_costs, save_classifier_costs

    try:
        with Progress(console=_wide_console()) as bar:
            task = bar.add_task("costs", total=images)
            arrays, fitted = classifier_costs(
                images, k, _assets_option(assets), threads, lambda n: bar.advance(task, n)
            )
        save_classifier_costs(out, arrays, fitted)
    except _model_errors(ValueError) as exc:
        fail(str(exc))
    weak, strong = arrays["wcost"].mean(), arrays["scost"].mean()
    _wide_console().print(
        f"wrote {out}: {images} images, top-{k} loss weak {weak:.4f}, strong {strong:.4f}"
    )


@train_app.command("dqn")
def train_dqn(
    out: Annotated[Path, typer.Option(help="Folder for the ONNX policy and card.")] = Path(
        "edgebus/assets"
    ),
    name: Annotated[str, typer.Option(help="File stem; default from the traces.")] = "",
    costs: Annotated[Path | None, typer.Option(help="Costs npz (default: shipped).")] = None,
    rate: Annotated[float, typer.Option(help="Token rate r per slot.")] = 0.1,
    bucket: Annotated[float, typer.Option(help="Bucket depth b in tokens.")] = 4.0,
    trace: Annotated[str, typer.Option(help="Image trace: locreset or iid.")] = "locreset",
    spread: Annotated[float, typer.Option(help="locreset spread sp.")] = 0.1,
    rprob: Annotated[float, typer.Option(help="locreset reset probability.")] = 0.1,
    arrivals: Annotated[str, typer.Option(help="periodic or markov.")] = "periodic",
    gaps: Annotated[str, typer.Option(help="Markov gaps I1,I2.")] = "1,3",
    tprob: Annotated[str, typer.Option(help="Markov switching tprob1,tprob2.")] = "0.001,0.0005",
    history: Annotated[int, typer.Option(min=2, help="History T (T-1 metrics in X).")] = 97,
    iterations: Annotated[int, typer.Option(min=1, help="Q iterations.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of traces and weights.")] = 0,
    threads: _AE_THREADS = 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a DQN offloading policy on the training split of a costs file and export it."""
    from edgebus.experiments.offloading import scenario_from_options, train_policy

    try:
        scenario = scenario_from_options(rate, bucket, trace, spread, rprob, arrivals, gaps, tprob)
        with Progress(console=_wide_console(), disable=not progress) as bar:
            task = bar.add_task("dqn", total=iterations)
            card = train_policy(
                out, name, costs, scenario, history, iterations, seed, threads,
                lambda i, loss: bar.update(task, completed=i, description=f"dqn loss {loss:.4f}"),
            )  # fmt: skip
    except _model_errors(ValueError) as exc:
        fail(str(exc))
    _wide_console().print(f"wrote {card} and {card.with_suffix('.onnx')}")


@experiment_app.command("offloading")
def experiment_offloading(
    out: Annotated[Path, typer.Option(help="Folder for CSV, PNGs and summary.")] = Path(
        "results/offloading"
    ),
    quick: Annotated[bool, typer.Option(help="The < 10 min preset.")] = False,
    costs: Annotated[Path | None, typer.Option(help="Costs npz (default: shipped).")] = None,
    figures: Annotated[str, typer.Option(help="Comma-separated subset, e.g. fig5_rprob.")] = "",
    targets: Annotated[bool, typer.Option(help="Also measure the issue's targets.")] = True,
    threads: _AE_THREADS = 1,
) -> None:
    """Offloading under a token bucket in simulation (paper Figs. 5, 6, 8, 9, 12) and the
    issue's target orderings with the shipped DQNs."""
    from dataclasses import replace

    from edgebus.experiments import offloading

    preset = replace(offloading.QUICK if quick else offloading.FULL, threads=threads)
    known = sorted({p.figure for p in offloading.points(preset)})
    chosen = [f.strip() for f in figures.split(",") if f.strip()] or None
    for f in chosen or []:
        if f not in known:
            fail(f"--figures {f!r}: expected some of {', '.join(known)}")
    console = _wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("offloading", total=offloading.steps(preset, chosen, targets))
            report = offloading.run(
                out, preset, costs, chosen,
                lambda what: bar.update(task, advance=1, description=what), targets,
            )  # fmt: skip
    except _model_errors(ValueError) as exc:
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
    console = _wide_console()
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
) -> None:
    """Accuracy against byte budget for PNC, fixed-rate AEs, progressive JPEG, WebP and JPEG
    (PNC paper, Fig. 2)."""
    from edgebus.experiments import pnc_rate

    budget_list = _int_list(budgets, "--budgets") if budgets else list(pnc_rate.DEFAULT_BUDGETS)
    console = _wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("pnc-rate", total=pnc_rate.STEPS)
            curves = pnc_rate.run(
                out, images, budget_list, _assets_option(assets), threads,
                lambda what: bar.update(task, advance=1, description=what),
            )  # fmt: skip
    except _model_errors() as exc:
        fail(str(exc))
    table = Table(title=f"top-1 accuracy (%) against byte budget, {out / 'pnc_rate.csv'}")
    table.add_column("budget B", justify="right")
    for c in curves:
        table.add_column(c.method, justify="right")
    for j, b in enumerate(curves[0].budgets):
        table.add_row(str(b), *(f"{100 * c.top1[j]:.1f}" for c in curves))
    console.print(table)
    summary = json.loads((out / "pnc_rate_summary.json").read_text())
    gap = 100 * summary["max_gap_best_fixed_minus_pnc_top1"]
    console.print(
        f"max(best fixed-rate − PNC) top-1: {gap:.2f} points; PNC beats pjpeg q30 at the "
        f"lowest third: {summary['pnc_beats_pjpeg_q30_lowest_third']}"
    )
    console.print(f"wrote {out / 'pnc_rate.csv'}, {out / 'pnc_rate.png'}")


@experiment_app.command("offload")
def experiment_offload(
    out: Annotated[Path, typer.Option(help="Folder for CSV and PNGs.")] = Path("results/offload"),
    codecs: Annotated[str, typer.Option(help="pnc, pjpeg[Q], webp[Q][mM], jpeg[Q], raw.")] = (
        "pnc,pjpeg,webp0,webp10,webp20"
    ),
    periods: Annotated[str, typer.Option(help="Frame periods T in ms.")] = "300,500,700",
    scenarios: Annotated[str, typer.Option(help="Link traces: presets, B/s or .csv.")] = (
        "none,light,heavy,switching"
    ),
    chunk_bytes: Annotated[str, typer.Option(help="Chunk sizes; 0 = one unit per chunk.")] = "0",
    frames: Annotated[int, typer.Option(help="Frames per camera (held-out test images).")] = 200,
    cameras_at_once: Annotated[
        int, typer.Option(help="Cameras run concurrently (more is faster, until the CPU lags).")
    ] = 10,
    broker: BrokerOption = None,
) -> None:
    """Deadline-driven offloading over a real broker in real time (PNC paper, Figs. 6-10)."""
    from edgebus.experiments import offload

    with one_line_errors():
        base = settings_from(None, heartbeat_s=5.0)
        setup_logging("warning")
        try:
            offload.run_and_report(
                base, out, codecs.split(","), _int_list(periods, "--periods"),
                scenarios.split(","), offload.parse_chunk_sizes(chunk_bytes), frames, broker,
                _wide_console(), cameras_at_once,
            )  # fmt: skip
        except offload.OffloadInputError as exc:
            fail(str(exc))


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

    size_list = _int_list(sizes, "--sizes")
    console = _wide_console()
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("bench codecs", total=codec_bench.METHODS_PER_SIZE * len(size_list))
            rows = codec_bench.bench(
                size_list, images, repeats, _assets_option(assets),
                lambda what: bar.update(task, advance=1, description=what),
            )  # fmt: skip
    except _model_errors() as exc:
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


# --- QoS orchestrator: the commands live in cli_qos.py ---

from edgebus import cli_qos  # noqa: E402  (registered after the apps above exist)

app.add_typer(cli_qos.qos_app, name="qos")
app.add_typer(cli_qos.models_app, name="models")
experiment_app.command("qos")(cli_qos.experiment_qos)

from edgebus import cli_acl  # noqa: E402

app.command("acl")(cli_acl.acl)


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
            exc.show()  # type: ignore[attr-defined]
        else:
            where = f"{context.command_path}: " if context is not None else ""
            err_console.print(f"error: {where}{exc.format_message()}", markup=False)
        raise SystemExit(getattr(exc, "exit_code", INPUT_ERROR)) from None
    raise SystemExit(code if isinstance(code, int) else 0)
