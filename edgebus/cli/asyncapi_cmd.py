"""`edgebus asyncapi`: write the bus's AsyncAPI document (edgebus/asyncapi.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgebus.cli.app import app
from edgebus.cli.common import RUNTIME_ERROR, fail

FORMATS = ("yaml", "json")


def render(fmt: str = "yaml", site: str | None = None) -> str:
    """The document as text; docs/asyncapi.yaml is render("yaml")."""
    import json

    from edgebus.asyncapi import build
    from edgebus.config import Settings

    document = build(site, broker_url=Settings().broker)  # the default, not this machine's
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    import yaml

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


@app.command("asyncapi")
def asyncapi(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
    site: Annotated[
        str | None,
        typer.Option("--site", help="Name this site in the addresses instead of a {site} "
                     "parameter."),
    ] = None,
) -> None:  # fmt: skip
    """Print the AsyncAPI 3.0 document of the bus: every topic, its messages and schemas."""
    from edgebus.topics import TopicError

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        text = render(fmt, site)
    except TopicError as exc:
        fail(f"--site: {exc}")
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"--output {str(output)!r}: {exc.strerror or exc}", RUNTIME_ERROR)
