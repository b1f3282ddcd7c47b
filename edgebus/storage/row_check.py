"""Checks one row against its table before a store takes it.

A row the database would refuse (a NaN where SQLite stores NULL into a NOT NULL column,
a string longer than PostgreSQL's column) must be caught before its batch is written:
otherwise the batch fails as a whole, again and again, and every row behind it waits
for ever. The same check runs for SQLite and PostgreSQL, so a row a local store takes
is one the global store takes too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, Text

from edgebus.storage.models import ROW_MODELS, table_of

INT64 = (-(2**63), 2**63 - 1)
MAX_JSON_DEPTH = 16


def _json_ok(value: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, list | tuple):
        return all(_json_ok(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ok(v, depth + 1) for k, v in value.items())
    return False


def _problem(value: Any, column: Any) -> str | None:
    kind = column.type
    if value is None:
        return None if column.nullable else "is missing (NULL)"
    if isinstance(kind, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expects a number, got {type(value).__name__}"
        return None if math.isfinite(value) else f"is {value!r}, not a finite number"
    if isinstance(kind, Integer | BigInteger):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expects an integer, got {type(value).__name__}"
        return None if INT64[0] <= value <= INT64[1] else f"is {value}, beyond 64 bits"
    if isinstance(kind, Boolean):
        return None if isinstance(value, bool) else f"expects a boolean, got {value!r}"
    if isinstance(kind, String | Text):
        if not isinstance(value, str):
            return f"expects a string, got {type(value).__name__}"
        limit = getattr(kind, "length", None)
        return None if limit is None or len(value) <= limit else f"is longer than {limit}"
    if isinstance(kind, JSON):
        return None if _json_ok(value) else "holds a NaN, an infinity or a non-JSON value"
    return None


def _plainly_fine(column: Any) -> Callable[[Any], bool]:
    """A quick test that passes the everyday values of a column (an int in an int column,
    a short str in a str column); whatever it does not pass gets the full check."""
    kind = column.type
    if isinstance(kind, Float):
        return lambda v: type(v) is int or (type(v) is float and math.isfinite(v))
    if isinstance(kind, Integer | BigInteger):
        return lambda v: type(v) is int and INT64[0] <= v <= INT64[1]
    if isinstance(kind, Boolean):
        return lambda v: type(v) is bool
    if isinstance(kind, String | Text):
        limit = getattr(kind, "length", None) or float("inf")
        return lambda v: type(v) is str and len(v) <= limit
    return lambda v: False  # JSON: always the full walk


# Per table, the columns a row brings (the store sets node, store and seq itself), each
# with its quick test: built once, not per row.
_COLUMNS = {
    kind: [
        (column.name, column, _plainly_fine(column))
        for column in table_of(model).columns
        if column.name not in ("node", "store", "seq")
    ]
    for kind, model in ROW_MODELS.items()
}


def row_problem(kind: str, row: dict[str, Any]) -> str | None:
    """Why table `kind` would refuse this row, in a few words; None if it would not."""
    for name, column, fine in _COLUMNS[kind]:
        value = row.get(name)
        if fine(value):
            continue
        problem = _problem(value, column)
        if problem is not None:
            return f"{kind}.{name} {problem}"
    return None
