"""Accuracy against byte budget (PNC paper, Fig. 2) for PNC, fixed-rate AEs and image codecs.

Every method is measured on the strong classifier's recorded test split. For each image and
budget B a method sends what it would under B bytes:
- PNC and fixed-rate AEs: the longest prefix of whole units; missing features are zero-filled.
- progressive JPEG: the first B bytes of the file, decoded as a truncated file.
- WebP / JPEG (and "best q" progressive JPEG): the highest quality whose file fits in B,
  assuming the size is known ahead as in the paper; nothing fits -> a blank image.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebus.codecs.assets import assets_dir
from edgebus.codecs.classifier import Classifier
from edgebus.codecs.errors import ModelFileError
from edgebus.codecs.image_codecs import JpegCodec, ProgressiveJpegCodec, WebpCodec
from edgebus.codecs.pnc import PNCCodec
from edgebus.fashion_mnist import fashion_mnist_dir
from edgebus.ml.datasets import DatasetSplit, ImageSet, load_fashion_mnist, procedural_shapes

# From about one PNC feature unit (~200 B at 64 px) to past the full PNC frame (~2 KB), as
# the paper's Fig. 2 spans one to all ten features.
DEFAULT_BUDGETS = (
    250,
    300,
    400,
    500,
    600,
    800,
    1000,
    1200,
    1400,
    1600,
    1800,
    2000,
    2200,
    2500,
    3000,
)
FIXED_RATE_K = (2, 4, 6, 8, 10)
QUALITIES = (0, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
PJPEG_QUALITIES = (10, 30, 50, 75, 90)

Tick = Callable[[str], None]


@dataclass(frozen=True)
class Curve:
    method: str
    budgets: tuple[int, ...]
    top1: tuple[float, ...]
    top5: tuple[float, ...]
    mean_bytes: tuple[float, ...]
    design_bytes: float | None = None


# Fashion-MNIST at 28 px: one PNC unit is ~35 B and a whole frame ~350 B, and a 28 px
# WebP or JPEG carries a header of 100-600 B; the budgets span both.
FASHION_BUDGETS = (40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600, 800)
# Real photos at 224 px: a PNC unit is ~500 B and a whole frame ~5 kB; WebP and JPEG of a
# 224 px photo take 1-8 kB.
PHOTO_BUDGETS = (500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000)
# The classifier and model names of each data set (models: <prefix>pnc<size>, ...).
DATA = {
    "shapes": ("strong", ""),
    "fashion-mnist": ("fashion_strong", "fashion_"),
    "photos": ("imagenet", "imagenet_"),  # no fixed-rate comparators trained at 224 px
}


def test_images(classifier: Classifier, limit: int) -> ImageSet:
    """The classifier card's recorded test split: regenerated from its seed (procedural), or
    the published Fashion-MNIST test images."""
    split = DatasetSplit.from_json(classifier.card["split"])
    count = min(limit, split.test)
    if split.kind == "fashion-mnist":
        test = load_fashion_mnist(fashion_mnist_dir(), train=False)
        return test.subset(np.arange(count))
    if split.kind != "procedural":
        raise ModelFileError(
            f"classifier split {split.kind!r}: expected a procedural or fashion-mnist split"
        )
    return procedural_shapes(split.seed, split.train + split.val, count, split.image_size)


class _Scorer:
    """Classifies batches of reconstructions and scores top-1/top-5 per image."""

    def __init__(self, classifier: Classifier, labels: np.ndarray) -> None:
        self.classifier = classifier
        self.labels = labels

    def hits(self, images: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        """(n, 2) booleans: top-1 and top-5 correctness for images of test items `index`."""
        labels = self.labels if index is None else self.labels[index]
        logits = np.concatenate(
            [self.classifier.logits(images[i : i + 256]) for i in range(0, len(images), 256)]
        )
        top = np.argsort(-logits, axis=1)[:, :5]
        return np.stack([top[:, 0] == labels, (top == labels[:, None]).any(axis=1)], axis=1)


def _curve(
    method: str,
    budgets: Sequence[int],
    hits: np.ndarray,
    used: np.ndarray,
    design: float | None = None,
) -> Curve:
    """hits: (budgets, images, 2); used: (budgets, images) bytes actually sent."""
    mean = hits.mean(axis=1)
    return Curve(
        method,
        tuple(budgets),
        tuple(float(v) for v in mean[:, 0]),
        tuple(float(v) for v in mean[:, 1]),
        tuple(float(v) for v in used.mean(axis=1)),
        design,
    )


def progressive_model_curve(
    method: str,
    codec: PNCCodec,
    data: ImageSet,
    scorer: _Scorer,
    budgets: Sequence[int],
    tick: Tick,
) -> Curve:
    """Classify every image with 0..M features once, then look up each budget's prefix."""
    m = codec.channels
    sym = np.zeros((len(data), m, codec.spec.feature_size, codec.spec.feature_size), np.int64)
    cum = np.zeros((len(data), m + 1), dtype=np.int64)
    for i, image in enumerate(data.images):
        frame = codec.encode(image)
        decoded, have, _ = codec.decode_symbols(frame.units)
        if not have.all():
            raise ModelFileError(f"{method}: a freshly encoded frame failed to decode")
        sym[i] = decoded
        cum[i, 1:] = np.cumsum(frame.unit_sizes)
    tick(f"{method}: encoded")
    z = sym.astype(np.float32) / (codec.spec.levels - 1)
    by_k = np.zeros((m + 1, len(data), 2), dtype=bool)
    for k in range(m + 1):
        zk = z.copy()
        zk[:, k:] = 0.0
        recon = np.concatenate([codec.reconstruct(zk[i : i + 256]) for i in range(0, len(zk), 256)])
        by_k[k] = scorer.hits(recon)
    tick(f"{method}: classified")
    kept = np.stack([(cum <= b).sum(axis=1) - 1 for b in budgets])  # (budgets, images)
    rows = np.arange(len(data))
    hits = np.stack([by_k[k_row, rows] for k_row in kept])
    used = np.take_along_axis(cum, kept.T, axis=1).T
    return _curve(method, budgets, hits, used, float(cum[:, -1].mean()))


def truncated_pjpeg_curve(
    quality: int, data: ImageSet, scorer: _Scorer, budgets: Sequence[int], tick: Tick
) -> Curve:
    codec = ProgressiveJpegCodec(quality, image_size=data.images.shape[1], block_size=None)
    streams = [codec.encode(image).stream() for image in data.images]
    hits = np.zeros((len(budgets), len(data), 2), dtype=bool)
    used = np.zeros((len(budgets), len(data)))
    for j, budget in enumerate(budgets):
        recon = np.stack([codec.decode([s[:budget]]) for s in streams])
        hits[j] = scorer.hits(recon)
        used[j] = [min(len(s), budget) for s in streams]
    tick(f"pjpeg q{quality}")
    design = float(np.mean([len(s) for s in streams]))
    return _curve(f"pjpeg q{quality}", budgets, hits, used, design)


def best_quality_curve(
    name: str,
    make: Callable[[int], Any],
    qualities: Sequence[int],
    data: ImageSet,
    scorer: _Scorer,
    budgets: Sequence[int],
    tick: Tick,
) -> Curve:
    """Per image, the highest quality whose whole file fits the budget."""
    sizes = np.zeros((len(qualities), len(data)), dtype=np.int64)
    q_hits = np.zeros((len(qualities) + 1, len(data), 2), dtype=bool)
    size = data.images.shape[1]
    for qi, q in enumerate(qualities):
        codec = make(q)
        frames = [codec.encode(image) for image in data.images]
        sizes[qi] = [f.size for f in frames]
        q_hits[qi] = scorer.hits(np.stack([codec.decode(f.units) for f in frames]))
    blank = np.zeros((len(data), size, size, 3), dtype=np.uint8)
    q_hits[-1] = scorer.hits(blank)  # index -1: nothing fits, the edge sees nothing
    tick(name)
    hits = np.zeros((len(budgets), len(data), 2), dtype=bool)
    used = np.zeros((len(budgets), len(data)))
    rows = np.arange(len(data))
    for j, budget in enumerate(budgets):
        fits = sizes <= budget  # qualities are ascending, so sizes mostly are too
        best = np.where(fits.any(axis=0), len(qualities) - 1 - np.argmax(fits[::-1], axis=0), -1)
        hits[j] = q_hits[best, rows]
        used[j] = np.where(best >= 0, sizes[np.maximum(best, 0), rows], 0)
    return _curve(name, budgets, hits, used)


def best_pjpeg_curve(curves: Sequence[Curve]) -> Curve:
    """Progressive JPEG with the best quality per budget (by measured top-1)."""
    pick = [max(curves, key=lambda c: c.top1[j]) for j in range(len(curves[0].budgets))]
    return Curve(
        "pjpeg best q",
        curves[0].budgets,
        tuple(c.top1[j] for j, c in enumerate(pick)),
        tuple(c.top5[j] for j, c in enumerate(pick)),
        tuple(c.mean_bytes[j] for j, c in enumerate(pick)),
    )


def run(
    out: Path,
    images: int = 1000,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    assets: Path | None = None,
    threads: int = 2,
    tick: Tick = lambda _: None,
    data_set: str = "shapes",
) -> list[Curve]:
    root = assets or assets_dir()
    if data_set not in DATA:
        raise ModelFileError(f"data {data_set!r}: expected one of {', '.join(DATA)}")
    classifier_name, prefix = DATA[data_set]
    classifier = Classifier(classifier_name, root=root, threads=threads)
    if data_set == "photos":  # labelled by the classifier itself: scores are agreement
        from edgebus.ml.photos import photo_test_set

        data = photo_test_set(lambda x: classifier.logits(x).argmax(axis=1))
    else:
        data = test_images(classifier, images)
    scorer = _Scorer(classifier, data.labels)
    size = data.images.shape[1]
    pnc = PNCCodec(f"{prefix}pnc{size}", root=root, threads=threads)
    curves = [progressive_model_curve("PNC", pnc, data, scorer, budgets, tick)]
    for k in FIXED_RATE_K if data_set != "photos" else ():
        codec = PNCCodec(f"{prefix}ae{size}_k{k}", root=root, threads=threads)
        curves.append(progressive_model_curve(f"AE K={k}", codec, data, scorer, budgets, tick))
    pjpeg = [truncated_pjpeg_curve(q, data, scorer, budgets, tick) for q in PJPEG_QUALITIES]
    curves.append(next(c for c in pjpeg if c.method == "pjpeg q30"))
    curves.append(best_pjpeg_curve(pjpeg))
    curves.append(
        best_quality_curve(
            "WebP best q",
            lambda q: WebpCodec(q, method=6, image_size=size),
            QUALITIES,
            data,
            scorer,
            budgets,
            tick,
        )
    )
    curves.append(
        best_quality_curve(
            "JPEG best q", lambda q: JpegCodec(q, image_size=size), QUALITIES, data, scorer,
            budgets, tick,
        )
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "pnc_rate.csv", curves)
    summary = targets(curves)
    summary["images"] = len(data)
    summary["data"] = data_set
    summary["classifier"] = classifier_name
    summary["classifier_test_top1"] = classifier.card.get("test_top1")
    (out / "pnc_rate_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(out / "pnc_rate.png", curves, len(data), data_set)
    return curves


# Ticks `run` reports, for a progress bar: two per autoencoder, one per pjpeg quality, and
# one each for WebP and JPEG.
def steps(data_set: str) -> int:
    fixed = 0 if data_set == "photos" else len(FIXED_RATE_K)
    return 2 * (1 + fixed) + len(PJPEG_QUALITIES) + 2


def write_csv(path: Path, curves: Sequence[Curve]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["method", "budget_bytes", "top1", "top5", "mean_bytes_sent"])
        for c in curves:
            for b, t1, t5, used in zip(c.budgets, c.top1, c.top5, c.mean_bytes, strict=True):
                writer.writerow([c.method, b, f"{t1:.4f}", f"{t5:.4f}", f"{used:.1f}"])


def targets(curves: Sequence[Curve]) -> dict[str, Any]:
    """The issue's acceptance figures, computed from the curves."""
    by = {c.method: c for c in curves}
    pnc = by["PNC"]
    fixed = [c for c in curves if c.method.startswith("AE K=")]
    n = len(pnc.budgets)
    # Without fixed-rate comparators (the photos) there is no gap to report: None.
    gaps = {
        b: max(c.top1[j] for c in fixed) - pnc.top1[j] for j, b in enumerate(pnc.budgets)
    } if fixed else {}  # fmt: skip
    worst = max(gaps.values()) if gaps else None
    low = range(max(1, n // 3))
    pj = by["pjpeg q30"]
    pj_best = by["pjpeg best q"]
    collapse = {}
    for c in fixed:
        below = [j for j, b in enumerate(c.budgets) if c.design_bytes and b < 0.8 * c.design_bytes]
        if below:
            j = below[-1]
            collapse[c.method] = {
                "budget": c.budgets[j],
                "design_bytes": round(c.design_bytes or 0, 1),
                "ae_top1": round(c.top1[j], 4),
                "pnc_top1": round(pnc.top1[j], 4),
            }
    return {
        "max_gap_best_fixed_minus_pnc_top1": None if worst is None else round(worst, 4),
        "gap_by_budget": {b: round(g, 4) for b, g in gaps.items()},
        "within_3_points_everywhere": None if worst is None else bool(worst <= 0.03),
        "lowest_third_budgets": [pnc.budgets[j] for j in low],
        "pnc_beats_pjpeg_q30_lowest_third": all(pnc.top1[j] > pj.top1[j] for j in low),
        "pnc_beats_pjpeg_best_q_lowest_third": all(pnc.top1[j] > pj_best.top1[j] for j in low),
        "fixed_rate_just_below_design_size": collapse,
        "pnc_full_bytes": round(pnc.design_bytes or 0, 1),
    }


def plot(path: Path, curves: Sequence[Curve], images: int, data_set: str = "shapes") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    styles = {"PNC": {"color": "black", "linewidth": 2.6, "marker": "o"}}
    for ax, metric in zip(axes, ("top1", "top5"), strict=True):
        for c in curves:
            style = styles.get(c.method, {})
            if c.method.startswith("AE K="):
                style = {"linestyle": "--", "marker": ".", "alpha": 0.85}
            elif not style:
                style = {"linestyle": ":", "marker": "s", "markersize": 3}
            ax.plot(c.budgets, [100 * v for v in getattr(c, metric)], label=c.method, **style)
        ax.set_xscale("log")
        ax.set_xlabel("byte budget per image (bytes)")
        ax.set_ylabel(f"{'top-1' if metric == 'top1' else 'top-5'} accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"Accuracy vs bytes, strong classifier, {images} {data_set} test images (cf. PNC Fig. 2)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
