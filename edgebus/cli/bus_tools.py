"""Looking at the bus: `sub`, `pub`, `nodes`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from edgebus.broker.bus import Delivery
from edgebus.cli.app import app
from edgebus.cli.common import (
    BrokerOption,
    ConfigOption,
    SiteOption,
    fail,
    one_line_errors,
    setup_logging,
    tool_bus,
    tool_settings,
)


def _render(delivery: Delivery, mode: str) -> str:
    from edgebus.messages import to_dict, to_json

    if delivery.message is not None:
        if mode == "json":
            return to_json(delivery.topic, delivery.message)
        body = to_dict(delivery.message)
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
