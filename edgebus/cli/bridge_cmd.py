"""`edgebus broker-config`: the mosquitto.conf of a site broker bridged to the cloud
(edgebus/broker/bridge.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgebus.cli.app import app
from edgebus.cli.common import RUNTIME_ERROR, fail


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        fail(f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:1883")
    return host, int(port)


@app.command("broker-config")
def broker_config(
    cloud: Annotated[
        str,
        typer.Option(
            "--cloud", help="The cloud broker the site bridges to: mqtt[s]://[user:pass@]host:port."
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", help="The site's name: the bridge's connection and client id.")
    ],
    listen: Annotated[
        str, typer.Option("--listen", help="Where the site broker listens, HOST:PORT.")
    ] = "127.0.0.1:1883",
    site: Annotated[str, typer.Option("--site", help="Site name in topics (all sites).")] = "lab",
    password_file: Annotated[
        str,
        typer.Option(
            "--password-file", help="Site users (mosquitto_passwd); without it, anonymous."
        ),
    ] = "",
    persistence: Annotated[
        str, typer.Option("--persistence", help="Directory for Mosquitto's persistence file.")
    ] = "",
    keepalive: Annotated[
        int, typer.Option("--keepalive", min=1, help="Bridge keepalive (s): how soon a cut shows.")
    ] = 10,
    mqtt311: Annotated[
        bool, typer.Option("--mqtt311", help="Bridge over MQTT 3.1.1 (cloud without MQTT 5).")
    ] = False,
    ca_file: Annotated[str, typer.Option("--ca-file", help="CA of an mqtts:// cloud.")] = "",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (mode 0600) instead of stdout."),
    ] = None,
) -> None:
    """Print the Mosquitto configuration of a site broker bridged to the cloud broker:
    results, statuses and store sync go up; model switches, scheduling policies and sync
    acks come down; frames stay at the site."""
    from edgebus.broker.address import BrokerUrlError, TlsOptions, parse_broker_url
    from edgebus.broker.bridge import SiteBridge
    from edgebus.topics import TopicError

    host, port = _listen(listen)
    try:
        address = parse_broker_url(cloud, TlsOptions(ca_file=ca_file))
        bridge = SiteBridge(
            name,
            address,
            listen_host=host,
            listen_port=port,
            namespace=site,
            persistence_dir=persistence,
            password_file=password_file,
            keepalive_s=keepalive,
            mqtt5=not mqtt311,
        )
    except (BrokerUrlError, TopicError, ValueError) as exc:
        fail(str(exc))
    text = bridge.render()
    if output is None:
        print(text, end="")
        return
    try:
        # The file may hold the cloud password: private from the first byte.
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    except OSError as exc:
        fail(f"--output {str(output)!r}: {exc.strerror or exc}", RUNTIME_ERROR)
