"""What each part of `edgebus experiment scheduling` hands back to the command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Tick = Callable[[str], None]


@dataclass
class PartReport:
    """One part's outcome: summary rows for the rich table, the targets it checked, and the
    files it wrote (CSV and PNG) under the results folder."""

    name: str  # "ents", "jstsh" or "edgesplit"
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
