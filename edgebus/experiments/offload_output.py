"""Files of the over-the-bus offloading experiment: the per-cell and per-frame CSVs, the
paper's grid of bars (Figs. 6-8) and the per-frame view of a switching link (Figs. 9-10)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgebus.experiments.offload_options import DEFAULT_SCENARIOS
from edgebus.experiments.offload_scoring import CellSummary, FrameRecord


def write_csv(out: Path, summaries: list[CellSummary], records: list[FrameRecord]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [s.row() for s in summaries]
    with (out / "offload_cells.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (out / "offload_frames.csv").open("w", newline="") as handle:
        frames = csv.writer(handle)
        frames.writerow(
            ["codec", "period_ms", "scenario", "chunk_bytes", "frame_id", "capture_ts",
             "label", "top1", "top5", "units_sent", "units_total", "units_received",
             "wire_bytes", "link_rate", "first_unit_ms", "latency_ms", "overruns"]
        )  # fmt: skip
        for r in records:
            c, s, res = r.cell, r.sent, r.result
            frames.writerow(
                [c.codec, c.period_ms, c.scenario, c.chunk_bytes, s.frame_id,
                 f"{s.capture_ts:.4f}", s.label,
                 int(res is not None and res.top_k[0] == s.label),
                 int(res is not None and s.label in res.top_k[:5]),
                 s.units_sent, s.units_total, res.units_received if res else -1,
                 s.wire_bytes, f"{s.link_rate:.0f}", f"{1000 * s.first_unit_s:.2f}",
                 f"{res.latency_ms:.1f}" if res else "", s.overruns]
            )  # fmt: skip


def plot_grid(out: Path, summaries: list[CellSummary]) -> Path:
    """Figs. 6–8 in the paper's layout: one column per scenario, bars per codec per period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The paper's order (none, light, heavy, then switching); other traces after them.
    known = {name: i for i, name in enumerate(DEFAULT_SCENARIOS)}
    scenarios = sorted(
        dict.fromkeys(s.cell.scenario for s in summaries), key=lambda n: known.get(n, len(known))
    )
    periods = sorted({s.cell.period_ms for s in summaries})
    methods = list(dict.fromkeys((s.cell.codec, s.cell.chunk_bytes) for s in summaries))
    metrics = [
        ("top5", "top-5 accuracy (Fig. 6)", 1.0),
        ("top1", "top-1 accuracy", 1.0),
        ("fully_offloaded", "fully offloaded (Fig. 7)", 1.0),
        ("throughput_bps", "throughput B/s (Fig. 8)", 1.0),
    ]
    fig, axes = plt.subplots(
        len(metrics), len(scenarios), figsize=(4 * len(scenarios), 2.8 * len(metrics)),
        squeeze=False,
    )  # fmt: skip
    width = 0.8 / max(1, len(methods))
    index = {(s.cell.codec, s.cell.chunk_bytes, s.cell.period_ms, s.cell.scenario): s
             for s in summaries}  # fmt: skip
    for col, scenario in enumerate(scenarios):
        for row, (field, title, _) in enumerate(metrics):
            ax = axes[row][col]
            for m, (codec, chunk) in enumerate(methods):
                values = [
                    getattr(index[(codec, chunk, p, scenario)], field)
                    if (codec, chunk, p, scenario) in index
                    else np.nan
                    for p in periods
                ]
                label = codec if len({c for _, c in methods}) == 1 else f"{codec}/{chunk}B"
                ax.bar(np.arange(len(periods)) + m * width, values, width, label=label)
            ax.set_xticks(np.arange(len(periods)) + width * (len(methods) - 1) / 2)
            ax.set_xticklabels([f"T={p}" for p in periods])
            if row == 0:
                ax.set_title(scenario)
            if col == 0:
                ax.set_ylabel(title)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "offload_grid.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_switching(out: Path, records: list[FrameRecord], codec: str, period: int) -> Path | None:
    """Fig. 9/10 style: per frame, the link rate, bytes and units of one camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        r
        for r in records
        # `switching` and its scaled forms (`switching:0.25`)
        if r.cell.scenario.partition(":")[0] == "switching"
        and r.cell.codec == codec
        and r.cell.period_ms == period
    ]
    if not rows:
        return None
    rows.sort(key=lambda r: r.sent.frame_id)
    t = np.array([r.sent.capture_ts for r in rows])
    t -= t[0]
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    axes[0].step(t, [r.sent.link_rate for r in rows], where="post", color="grey", label="trace")
    axes[0].plot(t, [r.sent.wire_bytes / (period / 1000) for r in rows], ".", label="frame")
    axes[0].set_ylabel("throughput B/s")
    axes[0].legend(fontsize=7)
    axes[1].plot(t, [r.sent.wire_bytes for r in rows], ".-")
    axes[1].set_ylabel("bytes per frame")
    axes[2].plot(t, [r.result.units_received if r.result else 0 for r in rows], ".-")
    axes[2].set_ylabel("units received")
    axes[2].set_xlabel("time (s)")
    axes[0].set_title(f"{codec}, T = {period} ms, switching none/heavy every 10 s")
    fig.tight_layout()
    path = out / f"offload_switching_{codec.replace(':', '_')}_t{period}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
