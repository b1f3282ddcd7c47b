"""`edgebus acl`: print the least-access ACL for a fleet's nodes (edgebus/acl.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from edgebus.cli.app import app
from edgebus.cli.common import fail


@app.command("acl")
def acl(
    members: Annotated[
        list[str],
        typer.Argument(
            help="NODE=ROLE for each user, e.g. camera-1=camera edge-1=edge cloud=cloud "
            "coordinator=coordinator ops=operator (ROLE: camera, edge, cloud, coordinator "
            "or operator).",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="mosquitto (acl_file) or toml (edgebus broker).")
    ] = "mosquitto",
    site: Annotated[str, typer.Option("--site", help="Site name in topics.")] = "lab",
) -> None:
    """Print an ACL that gives each node (its user name is its node id) what its role needs."""
    from edgebus.acl import AclError, parse_members, render
    from edgebus.topics import TopicError

    try:
        print(render(parse_members(members), site, fmt), end="")
    except (AclError, TopicError) as exc:
        fail(str(exc))
