"""CSV and PNG output shared by experiments and benchmarks."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def bar_chart(path: Path, rows: Sequence[dict[str, Any]], value: str, title: str) -> None:
    """Grouped bars: one group per (size, qos) cell, one bar per client."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cells = sorted({(r["size"], r["qos"]) for r in rows})
    clients = list(dict.fromkeys(r["client"] for r in rows))
    width = 0.8 / max(1, len(clients))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for index, client in enumerate(clients):
        heights = [
            next(
                (r[value] for r in rows if r["client"] == client and (r["size"], r["qos"]) == c),
                0.0,
            )
            for c in cells
        ]
        ax.bar(np.arange(len(cells)) + index * width, heights, width, label=client)
    ax.set_xticks(np.arange(len(cells)) + width * (len(clients) - 1) / 2)
    ax.set_xticklabels([f"{size} B, QoS {qos}" for size, qos in cells])
    ax.set_ylabel(value.replace("_", " "))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
