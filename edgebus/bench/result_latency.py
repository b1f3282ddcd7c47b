"""Capture-to-result latency of a fleet's offloaded frames, from its global store."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from edgebus.storage.global_store import GlobalStore
from edgebus.storage.models import ResultRow


def offloaded_latencies_ms(store_url: str) -> np.ndarray:
    """Every results row of a frame the edge classified (not the camera's own answer)."""
    store = GlobalStore(store_url)
    store.open()
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(ResultRow.latency_ms).where(ResultRow.offloaded.is_(True))
            ).all()
    finally:
        store.close()
    return np.array([r[0] for r in rows], dtype=float)
