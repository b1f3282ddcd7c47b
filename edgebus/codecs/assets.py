"""Where the shipped models, tables and cards live, and how they are read."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from edgebus.codecs.errors import ModelFileError


def assets_dir() -> Path:
    return Path(str(resources.files("edgebus") / "assets"))


def asset_path(name: str | Path, root: Path | None = None) -> Path:
    """Resolve a file name against the assets folder (or `root`); a path that exists as given
    is used as is."""
    given = Path(name)
    if given.exists():
        return given
    path = (root or assets_dir()) / given
    if not path.exists():
        raise ModelFileError(f"asset {name}: no such file in {path.parent}")
    return path


def read_card(name: str | Path, root: Path | None = None) -> dict[str, Any]:
    path = asset_path(name, root)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"card {path}: expected a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"card {path}: expected a JSON object")
    return data
