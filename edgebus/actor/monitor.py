"""A node's resource monitor: what it reports in its retained status for the schedulers.

CPU cores and the free share of them, total and free memory (psutil), plus what the role
adds: an edge's measured classification capacity, a camera's link rates to its peers.
The free CPU share is psutil's utilisation since the previous snapshot, so it reflects the
last status period rather than one instant.
"""

from __future__ import annotations

import psutil

MIB = float(2**20)


class ResourceMonitor:
    def __init__(self) -> None:
        psutil.cpu_percent(None)  # the first call only starts the measuring interval

    def snapshot(self) -> dict[str, float]:
        memory = psutil.virtual_memory()
        busy = psutil.cpu_percent(None) / 100.0
        return {
            "cpu_cores": float(psutil.cpu_count() or 1),
            "cpu_free": max(0.0, 1.0 - busy),
            "memory_mb": memory.total / MIB,
            "memory_free_mb": memory.available / MIB,
        }
