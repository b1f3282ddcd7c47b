"""A node's counters as typed fields: a misspelt counter is a type error where it is
counted, not a new key that silently stays at zero on the dashboard."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(slots=True)
class Counts:
    """Base of every role's counters; each field is reported in the status by its name."""

    def as_stats(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}
