"""Running a fleet: `node`, `up`, `broker`, `broker-user`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from edgebus.actor.lifecycle import Node

from edgebus.cli.app import app
from edgebus.cli.common import (
    BrokerOption,
    ConfigOption,
    SiteOption,
    fail,
    one_line_errors,
    settings_from,
    setup_logging,
)

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
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics on this port (metrics_host, 127.0.0.1); 0 = off.",
    ),
]
ClassifierOption = Annotated[
    str | None,
    typer.Option(
        "--classifier",
        help="Edge: strong (the shapes, 64 px), imagenet (real photos, 224 px) or a card .json.",
    ),
]


def role_class(role: str) -> type[Node]:
    """The role's node class, importing only its own modules: a camera process never loads
    the coordinator's solvers, the embedded broker or the launcher."""
    if role == "coordinator":
        from edgebus.coordinator.node import CoordinatorNode

        return CoordinatorNode
    from edgebus import nodes

    name = {"camera": "CameraNode", "edge": "EdgeNode", "cloud": "CloudNode"}[role]
    node_class: type[Node] = getattr(nodes, name)
    return node_class


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
        typer.Option(
            "--source",
            help="Camera source: synthetic, folder:DIR, video:FILE, or (with --codec qos) "
            "accelerometer, shapes28, fashion-mnist.",
        ),
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
    classifier: ClassifierOption = None,
    metrics_port: MetricsPortOption = None,
    zone: Annotated[
        str | None,
        typer.Option("--zone", help="Camera, edge: its site; scheduled only within it."),
    ] = None,
) -> None:
    """Run one node until SIGINT/SIGTERM; it then flushes and publishes offline."""
    from edgebus.aio import install_stop_signals

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
            zone=zone,
            classifier=classifier,
            metrics_port=metrics_port,
        )
        setup_logging(settings.log_level)
        node_class = role_class(settings.role)

        async def main() -> None:
            if settings.role == "edge":
                actor = node_class(settings, shared_group=shared_group)  # type: ignore[call-arg]
            else:
                actor = node_class(settings)
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
        str | None,
        typer.Option(
            "--link", help="Camera uplink: a preset, B/s, a .csv, or off (switching; photos off)."
        ),
    ] = None,
    codec: Annotated[
        str | None, typer.Option("--codec", help="Camera codec (pnc; photos webp20).")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Camera source: synthetic, or real photos from folder:DIR or video:FILE "
            "(classified by the ImageNet classifier at 224 px).",
        ),
    ] = None,
    classifier: ClassifierOption = None,
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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Prometheus metrics from every node: node i on this port + i (listed at "
            "start); 0 = off.",
        ),
    ] = None,
    site: SiteOption = None,
    config: ConfigOption = None,
) -> None:
    """Start a broker (unless --broker) and every role, show a live dashboard, then a summary."""
    from edgebus.config import is_configured
    from edgebus.launch import UpPlan, run_up
    from edgebus.launch_plan import up_defaults

    with one_line_errors():
        # Under `up` the children's info lines would crowd the dashboard: warnings and
        # errors only, unless log_level is set.
        quiet = None if is_configured("log_level", config) else "warning"
        flags: dict[str, object] = dict(
            site=site, log_level=quiet, frame_period_ms=period_ms, heartbeat_s=1.0, link=link,
            codec=codec, source=source, classifier=classifier, offload=offload,
            offload_rate=rate, offload_bucket=bucket, metrics_port=metrics_port,
            **({"broker": broker} if broker else {}),
        )  # fmt: skip
        settings = up_defaults(
            settings_from(config, **flags), lambda key: is_configured(key, config, flags)
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
            dashboard=dashboard, link=settings.link, edges=edges, kill_edge_after_s=kill_edge,
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
    from edgebus.aio import install_stop_signals
    from edgebus.broker.embedded import EmbeddedBroker

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
