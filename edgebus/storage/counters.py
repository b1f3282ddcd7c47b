"""What the storage side counts, as typed fields rather than free-form string keys:
a misspelt counter is a type error, not a silent new key that stays at zero."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StoreStats:
    """A local store's rows, from add() to prune."""

    rows_written: int = 0
    rows_quarantined: int = 0  # refused by row_check or the database, kept as text
    rows_dropped: int = 0  # refused because max_pending rows already wait in memory
    rows_pruned: int = 0
    write_errors: int = 0  # failed commits (the rows wait in memory and are tried again)


@dataclass(slots=True)
class SyncStats:
    """A node's sync agent: batches it sent and acknowledgements it got."""

    batches_sent: int = 0
    rows_sent: int = 0
    resends: int = 0
    acks: int = 0
    acks_for_other_stores: int = 0  # for a store this node replaced: ignored
    acks_beyond_sent: int = 0  # for rows never sent: forged or from a stale session
    ack_regressions: int = 0  # below the current watermark: the global store lost rows


@dataclass(slots=True)
class SinkStats:
    """The global store's sink: batches taken, refused, stored, acknowledged."""

    batches_stored: int = 0
    batches_rejected: int = 0
    rows_stored: int = 0
    rows_quarantined: int = 0
    store_errors: int = 0
    acks_sent: int = 0
    unexpected_messages: int = 0
