"""Scoring of the over-the-bus offloading experiment: a cell (one camera's codec, period,
link scenario and chunk size), each frame it sent with the result the edge answered, and the
per-cell summary of accuracy, offloading, throughput and lateness."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from edgebus.messages import Result
from edgebus.nodes.frame_job import SentFrame


@dataclass(frozen=True)
class Cell:
    codec: str
    period_ms: int
    scenario: str
    chunk_bytes: int
    replica: int = 0  # several cameras of one cell (the scale benchmark)

    @property
    def camera_id(self) -> str:
        name = f"{self.codec}.{self.scenario.replace('/', '_')}.c{self.chunk_bytes}"
        return f"{name}.r{self.replica}" if self.replica else name


@dataclass
class FrameRecord:
    cell: Cell
    sent: SentFrame
    result: Result | None
    result_count: int  # must be exactly 1


@dataclass(frozen=True)
class CellSummary:
    cell: Cell
    frames: int
    results: int
    duplicate_results: int
    top1: float
    top5: float
    fully_offloaded: float
    throughput_bps: float
    mean_units: float
    overruns: int
    late_chunks: int
    throughput_error: float
    p99_latency_ms: float

    def row(self) -> dict[str, object]:
        out: dict[str, object] = dataclasses.asdict(self.cell)
        out.update({k: v for k, v in dataclasses.asdict(self).items() if k != "cell"})
        return out


def _hit(record: FrameRecord, k: int) -> bool:
    return record.result is not None and record.sent.label in record.result.top_k[:k]


def summarise(
    records: list[FrameRecord], errors: dict[Cell, float], late: dict[int, int]
) -> list[CellSummary]:
    by_cell: dict[Cell, list[FrameRecord]] = {}
    for record in records:
        by_cell.setdefault(record.cell, []).append(record)
    out = []
    for cell, rows in by_cell.items():
        scored = [r for r in rows if r.result is not None]
        duplicates = sum(r.result_count - 1 for r in rows if r.result_count > 1)
        # A frame without a result counts as a miss: the system gave no answer in time.
        top1 = np.mean([_hit(r, 1) for r in rows])
        top5 = np.mean([_hit(r, 5) for r in rows])
        frames = [r.sent for r in rows]
        latencies = [r.result.latency_ms for r in scored if r.result is not None]
        out.append(
            CellSummary(
                cell,
                len(frames),
                len(scored),
                duplicates,
                float(top1),
                float(top5),
                float(np.mean([f.units_sent == f.units_total for f in frames])),
                sum(f.wire_bytes for f in frames) / (len(frames) * cell.period_ms / 1000),
                float(np.mean([f.units_sent for f in frames])),
                sum(f.overruns for f in frames),
                late.get(cell.period_ms, 0),
                errors.get(cell, 0.0),
                float(np.percentile(latencies, 99)) if latencies else math.nan,
            )
        )
    return sorted(out, key=lambda s: (s.cell.period_ms, s.cell.scenario, s.cell.codec))
