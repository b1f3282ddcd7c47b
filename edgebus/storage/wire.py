"""How a SyncBatch carries rows: one block per table, column names once, then value lists.

A list of per-row dicts would repeat every column name in every row, and the message
decoder validates each key; blocks keep the payload and its validation small.
"""

from __future__ import annotations

from typing import Any

from edgebus.storage.models import ROW_MODELS, columns

_COLUMNS = {kind: frozenset(columns(kind)) for kind in ROW_MODELS}


class BadBatch(ValueError):
    """A sync batch whose rows do not match its header or the schema."""


def block(kind: str, names: list[str], values: list[list[Any]]) -> dict[str, Any]:
    return {"table": kind, "columns": names, "values": values}


def block_rows(blocks: list[dict[str, Any]]) -> int:
    return sum(len(b.get("values", ())) for b in blocks)


def unpack(
    node: str, store: str, first: int, last: int, blocks: list[dict[str, Any]]
) -> dict[str, list]:
    """Check the blocks hold exactly seqs first..last of `node`'s store `store`; return
    row dicts per table, each with its store id (sent once, in the batch header)."""
    where = f"batch {first}..{last} from {node}"
    if not store:
        raise BadBatch(f"{where}: no store identity")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    seqs: list[int] = []
    for item in blocks:
        kind, names, values = item.get("table"), item.get("columns"), item.get("values")
        if kind not in _COLUMNS or not isinstance(names, list) or not isinstance(values, list):
            raise BadBatch(f"{where}: malformed block for table {kind!r}")
        if not set(names) <= _COLUMNS[kind] or "seq" not in names or "node" not in names:
            raise BadBatch(f"{where}: columns {names} do not fit table {kind}")
        if any(not isinstance(v, list) or len(v) != len(names) for v in values):
            raise BadBatch(f"{where}: a row of table {kind} has the wrong number of values")
        rows = [{**dict(zip(names, v, strict=True)), "store": store} for v in values]
        if any(r["node"] != node for r in rows):
            raise BadBatch(f"{where}: holds rows of another node")
        seqs += [r["seq"] for r in rows]
        by_kind.setdefault(kind, []).extend(rows)
    if sorted(seqs) != list(range(first, last + 1)):
        raise BadBatch(f"{where}: its {len(seqs)} rows do not cover seqs {first}..{last}")
    return by_kind
