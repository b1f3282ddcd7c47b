"""Row counts across a fleet's local stores and the global store (for run summaries)."""

from __future__ import annotations

from pathlib import Path

from edgebus.storage.engine import make_engine
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.local import LocalStore
from edgebus.storage.models import ROW_MODELS


def local_rows(path: Path, node: str, since_ts: float) -> dict[str, int]:
    """Rows per table in one node's local store, written at or after since_ts."""
    if not path.exists():
        return dict.fromkeys(ROW_MODELS, 0)
    store = LocalStore(path, node)
    store.engine = make_engine(f"sqlite:///{path}")
    try:
        return {kind: store.count_rows(kind, since_ts) for kind in ROW_MODELS}
    finally:
        store.engine.dispose()


def global_rows(url: str, nodes: list[str], since_ts: float) -> dict[str, int]:
    store = GlobalStore(url)
    try:
        store.open()
        return {kind: store.count(kind, nodes, since_ts) for kind in ROW_MODELS}
    finally:
        store.close()
