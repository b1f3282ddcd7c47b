"""`edgebus json-view`: republish chosen topics as JSON with field names
(edgebus/nodes/json_view.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

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


@app.command("json-view")
def json_view(
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            "-k",
            help="What to republish (repeat): results, dropped, outcome, status, heartbeat, "
            "model-switch, model-ack, model-drift, qos-request, sched-policy, deadletter. "
            "Default: results, dropped, status, heartbeat, model-switch, sched-policy.",
            show_default=False,
        ),
    ] = None,
    node_id: Annotated[str, typer.Option("--id", help="Node id.")] = "json-view",
    site: SiteOption = None,
    broker: BrokerOption = None,
    config: ConfigOption = None,
    wait: Annotated[
        float | None,
        typer.Option("--wait", min=0.0, help="Give up if the broker is unreachable this long (s)."),
    ] = None,
) -> None:
    """Republish edgebus/v1/<site>/<kind>/... as JSON on edgebus/v1/<site>/json/<kind>/...
    (the form `sub --json` prints, content type application/json) until SIGINT/SIGTERM."""
    from edgebus.aio import install_stop_signals
    from edgebus.nodes.json_view import DEFAULT_KINDS, VIEWABLE, JsonViewNode

    chosen = tuple(dict.fromkeys(kinds)) if kinds else DEFAULT_KINDS
    unknown = [kind for kind in chosen if kind not in VIEWABLE]
    if unknown:
        fail(f"--kind {unknown[0]!r}: expected one of {', '.join(VIEWABLE)}")
    with one_line_errors():
        # The view keeps no store of its own: it holds nothing that is not on the bus.
        settings = settings_from(
            config, node_id=node_id, site=site, broker=broker, store_enabled=False
        )
        setup_logging(settings.log_level)

        async def main() -> None:
            view = JsonViewNode(settings, chosen)
            install_stop_signals(view.stop)
            await view.run(connect_timeout=wait)

        asyncio.run(main())
