"""Committed rows the global store has not acknowledged yet, kept in memory in seq order.

The sync agent reads its batches from here instead of from SQLite, so a batch never
waits behind the writer thread; it falls back to SQLite after a restart, or when more
than `limit` rows await their ack (the oldest half is then let go).
"""

from __future__ import annotations

from typing import Any

from edgebus.storage.local_writes import Row
from edgebus.storage.models import ROW_MODELS, wire_columns
from edgebus.storage.wire import block

WIRE_NAMES = {kind: wire_columns(kind) for kind in ROW_MODELS}


def wire_blocks(rows: list[Row]) -> tuple[list[dict[str, Any]], int]:
    """Rows as the sync batch carries them: one block of value lists per table."""
    grouped: dict[str, list[list[Any]]] = {}
    for kind, row in rows:
        grouped.setdefault(kind, []).append([row[name] for name in WIRE_NAMES[kind]])
    return [block(k, list(WIRE_NAMES[k]), v) for k, v in grouped.items()], len(rows)


class UnackedRows:
    """Loop thread only. Seqs base, base + 1, ... with no gap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._rows: list[Row] = []
        self._base = 1

    def add(self, stamped: list[Row]) -> None:
        # If commits arrived out of order, start afresh: older seqs come from SQLite.
        first = stamped[0][1]["seq"]
        if not self._rows or first != self._base + len(self._rows):
            self._rows = []
            self._base = first
        self._rows += stamped
        if len(self._rows) > self.limit:
            dropped = len(self._rows) - self.limit // 2
            del self._rows[:dropped]
            self._base += dropped

    def read(
        self, after_seq: int, upto_seq: int, acked_seq: int
    ) -> tuple[list[dict[str, Any]], int] | None:
        """Rows (after_seq, upto_seq] as wire blocks, or None if the cache does not hold
        after_seq + 1. Acknowledged rows are let go first: they are never sent again."""
        done = min(acked_seq, self._base + len(self._rows) - 1) - self._base + 1
        if done > 0:
            del self._rows[:done]
            self._base += done
        if self._rows and self._base <= after_seq + 1:
            start = after_seq + 1 - self._base
            if start < len(self._rows):
                return wire_blocks(self._rows[start : start + upto_seq - after_seq])
        return None
