"""How `edgebus audit` shows its report: a table per store stream, one per camera."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from edgebus.storage.audit import AuditReport

SHOWN_KEYS = 5  # frame keys listed per camera for awaiting, lost or duplicated frames


def _keys(keys: list[tuple[str, int, int]]) -> str:
    shown = ", ".join(f"{inc}/{frame}" for _, inc, frame in keys[:SHOWN_KEYS])
    more = len(keys) - SHOWN_KEYS
    return f"{len(keys)}" + (f" ({shown}{', …' if more > 0 else ''})" if keys else "")


def render(report: AuditReport, console: Console) -> None:
    streams = Table(title="rows: each local store against the global store")
    for column in ("node", "store", "local rows", "in global", "acked seq", "unsynced",
                   "lost", "quarantined"):  # fmt: skip
        streams.add_column(column, justify="left" if column in ("node", "store") else "right")
    for s in report.streams:
        streams.add_row(
            s.node, s.store[:8], f"{s.local_rows:,}", f"{s.global_rows:,}", f"{s.acked_seq:,}",
            f"{s.unsynced:,}", f"[red]{s.lost:,}[/red]" if s.lost else "0", f"{s.quarantined:,}",
        )  # fmt: skip
    console.print(streams)
    cameras = Table(title="frames: one record each (a result or a dropped row with its reason)")
    for column in ("camera", "captured", "results", "dropped", "drop reasons",
                   "awaiting", "silently lost", "duplicated"):  # fmt: skip
        cameras.add_column(column, justify="left" if column in ("camera", "drop reasons")
                           else "right")  # fmt: skip
    for c in report.cameras:
        reasons = ", ".join(f"{r} {n}" for r, n in c.reasons.most_common(4)) or "-"
        cameras.add_row(
            c.camera, f"{c.captured:,}", f"{c.results:,}", f"{c.dropped:,}", reasons,
            f"[yellow]{_keys(c.awaiting)}[/yellow]" if c.awaiting else "0",
            f"[red]{_keys(c.lost)}[/red]" if c.lost else "0",
            f"[red]{_keys(c.duplicated)}[/red]" if c.duplicated else "0",
        )  # fmt: skip
    console.print(cameras)
    console.print(report.summary(), markup=False, highlight=False)


def as_json(report: AuditReport) -> str:
    data: dict[str, Any] = {
        "ok": report.ok,
        "streams": [asdict(s) for s in report.streams],
        "cameras": [{**asdict(c), "reasons": dict(c.reasons)} for c in report.cameras],
        "global_quarantined": report.global_quarantined,
    }
    return json.dumps(data, indent=2)
