"""The accuracy-vs-bytes experiment and the encode benchmark on the shipped models, tiny."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edgebus.experiments import codec_bench, pnc_rate


def test_pnc_rate_writes_csv_png_and_summary(tmp_path: Path) -> None:
    curves = pnc_rate.run(tmp_path, images=12, budgets=(80, 400, 3000))
    methods = [c.method for c in curves]
    assert methods[:6] == ["PNC", "AE K=2", "AE K=4", "AE K=6", "AE K=8", "AE K=10"]
    assert {"pjpeg q30", "pjpeg best q", "WebP best q", "JPEG best q"} <= set(methods)
    for c in curves:
        assert all(0.0 <= v <= 1.0 for v in c.top1 + c.top5)
        assert all(t1 <= t5 for t1, t5 in zip(c.top1, c.top5, strict=True))
        assert all(used <= b for used, b in zip(c.mean_bytes, c.budgets, strict=True))
    with (tmp_path / "pnc_rate.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * len(curves)
    summary = json.loads((tmp_path / "pnc_rate_summary.json").read_text())
    assert summary["images"] == 12 and "max_gap_best_fixed_minus_pnc_top1" in summary
    assert (tmp_path / "pnc_rate.png").stat().st_size > 10_000


def test_codec_bench_rows(tmp_path: Path) -> None:
    rows = codec_bench.bench(sizes=(64,), images=2, repeats=1)
    assert len(rows) == codec_bench.METHODS_PER_SIZE
    webp = next(r for r in rows if r.method == "WebP m6 q20")
    assert webp.ratio_to_webp_m6_q20 == 1.0
    assert all(r.mean_ms > 0 for r in rows)
    codec_bench.write_csv(tmp_path / "b.csv", rows)
    assert (tmp_path / "b.csv").read_text().count("\n") == len(rows) + 1


def test_pnc_rate_on_fashion_mnist_uses_its_own_models(tmp_path: Path, fashion_mnist_dir) -> None:
    curves = pnc_rate.run(
        tmp_path, images=40, budgets=(60, 150, 400), data_set="fashion-mnist"
    )  # fmt: skip
    pnc = next(c for c in curves if c.method == "PNC")
    # fashion_pnc28: one ~43 B unit at 60 B already scores well above chance; the full
    # frame (~300 B) sits near the strong classifier's 91.65 %.
    assert pnc.top1[0] > 0.4 and pnc.top1[-1] >= 0.75
    assert pnc.design_bytes is not None and pnc.design_bytes < 400
    summary = json.loads((tmp_path / "pnc_rate_summary.json").read_text())
    assert summary["data"] == "fashion-mnist" and summary["classifier"] == "fashion_strong"
