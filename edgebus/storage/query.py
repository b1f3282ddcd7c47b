"""`edgebus query`: rows from the global store, plus (with --fresh) the unsynced rows that
their owning nodes still hold, asked for over request/reply."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edgebus.broker.bus import Bus, RequestFailed, RequestTimeout
from edgebus.messages import StoreQuery, StoreRows
from edgebus.storage.errors import QueryInputError
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.models import ROW_MODELS, columns
from edgebus.storage.sync import QUERY_SERVICE

FORMATS = ("table", "json", "csv")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_since(text: str | None, now: float) -> float:
    """`--since`: a duration back from now (30s, 15m, 2h, 7d), an ISO date or time, or
    epoch seconds. Returns epoch seconds; bad input raises QueryInputError."""
    if text is None or not text.strip():
        return 0.0
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryInputError(
            f"--since {text!r}: expected a duration like 30s, 15m, 2h or 7d, an ISO time "
            "like 2026-11-23T10:00:00, or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise QueryInputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def check_table(table: str) -> str:
    if table not in ROW_MODELS:
        raise QueryInputError(f"table {table!r}: expected one of {', '.join(ROW_MODELS)}")
    return table


@dataclass(slots=True)
class QueryResult:
    table: str
    rows: list[dict[str, Any]]
    unanswered: list[str] = field(default_factory=list)


def read_global(url: str, table: str, nodes: list[str], since_ts: float) -> QueryResult:
    store = GlobalStore(url)
    try:
        store.open()
        rows = [{**r, "synced": True} for r in store.rows(table, nodes or None, since_ts)]
        return QueryResult(table, rows)
    finally:
        store.close()


def known_nodes(url: str) -> list[str]:
    store = GlobalStore(url)
    try:
        store.open()
        return store.nodes()
    finally:
        store.close()


async def fetch_fresh(
    bus: Bus, result: QueryResult, nodes: list[str], since_ts: float, timeout_s: float
) -> QueryResult:
    """Add each node's not-yet-synced rows; a node that does not answer is listed."""
    seen = {(r["node"], r["seq"]) for r in result.rows}

    async def ask(node: str) -> StoreRows | None:
        topic = bus.topics.request(node, QUERY_SERVICE)
        try:
            reply = await bus.request(topic, StoreQuery(result.table, since_ts), timeout_s)
        except (RequestTimeout, RequestFailed):
            return None
        return reply if isinstance(reply, StoreRows) else None

    replies = await asyncio.gather(*(ask(node) for node in nodes))
    for node, reply in zip(nodes, replies, strict=True):
        if reply is None:
            result.unanswered.append(node)
            continue
        for row in reply.rows:
            if (row.get("node"), row.get("seq")) not in seen:
                result.rows.append({**row, "synced": False})
    result.rows.sort(key=lambda r: (r["ts"], r["node"], r["seq"]))
    return result


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def render(result: QueryResult, fmt: str) -> str:
    """The rows as JSON (a list), CSV (with a header) or a plain aligned table."""
    keys = ("node", "seq", "ts")
    names = [*keys, *(c for c in columns(result.table) if c not in keys), "synced"]
    if fmt == "json":
        return json.dumps([{n: r.get(n) for n in names} for r in result.rows], indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for r in result.rows:
            writer.writerow(
                [
                    json.dumps(r.get(n)) if isinstance(r.get(n), list | dict) else r.get(n)
                    for n in names
                ]
            )
        return out.getvalue().rstrip("\n")
    shown = [n for n in names if n not in ("scores", "stats", "detail")]
    cells = [[_cell(n, r.get(n)) for n in shown] for r in result.rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(shown)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(shown, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name.endswith("ts") and isinstance(value, float):
        return _iso(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
