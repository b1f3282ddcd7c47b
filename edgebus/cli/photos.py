"""`edgebus photos DIR`: real photos for a camera to send (`up --source folder:DIR`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgebus.cli.app import app
from edgebus.cli.common import fail, model_errors


@app.command()
def photos(
    out: Annotated[Path, typer.Argument(help="Folder to write the photos to.")],
) -> None:
    """Write a few real photos (a cat, an espresso, a rocket, …, from scikit-image) to OUT,
    for `edgebus up --source folder:OUT`."""
    from edgebus.ml.photos import write_photos

    try:
        written = write_photos(out)
    except OSError as exc:
        fail(f"photos folder {out}: {exc.strerror or exc}", 1)
    except model_errors() as exc:
        fail(str(exc), 1)
    print(f"wrote {len(written)} photos to {out}: {', '.join(p.name for p in written)}")
    print(f"try: edgebus up --source folder:{out} --cameras 1")
