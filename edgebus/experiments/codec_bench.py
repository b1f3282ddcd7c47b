"""Single-thread encode time per image (PNC paper, Table I) on the same images for every codec.

PNC is timed end to end (int8 encoder, 6-bit quantisation, per-feature Huffman, unit framing)
and also split into its model and its coding parts. Ratios are to WebP m6 q20 and progressive
JPEG q30 measured in the same run, so the machine's speed cancels out.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebus.codecs.assets import assets_dir
from edgebus.codecs.base import Codec
from edgebus.codecs.image_codecs import ProgressiveJpegCodec, WebpCodec
from edgebus.codecs.pnc import PNCCodec
from edgebus.ml.datasets import procedural_shapes

PAPER_PI4_MS = {
    "PNC (int8, 6-bit, Huffman)": 11.8,
    "WebP m0 q0": 6.0,
    "WebP m0 q20": 6.7,
    "WebP m6 q0": 32.5,
    "WebP m6 q20": 48.6,
    "pjpeg q30": 5.8,
}
BENCH_SEED = 7  # images of their own, unrelated to any training split


@dataclass(frozen=True)
class Timing:
    image_size: int
    method: str
    mean_ms: float
    median_ms: float
    mean_bytes: float
    ratio_to_webp_m6_q20: float = float("nan")
    ratio_to_pjpeg_q30: float = float("nan")
    paper_pi4_ms: float | None = None


def _time(fn: Callable[[np.ndarray], object], images: np.ndarray, repeats: int) -> list[float]:
    for image in images[: min(3, len(images))]:
        fn(image)  # warm-up: first runs allocate
    samples = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            fn(image)
            samples.append(time.perf_counter() - start)
    return samples


Method = tuple[str, Codec | None, Callable[[np.ndarray], object]]


def _methods(size: int, root: Path) -> list[Method]:
    pnc = PNCCodec(f"pnc{size}", root=root, threads=1, load_decoder=False)
    pnc_fp32 = PNCCodec(f"pnc{size}", root=root, threads=1, int8=False, load_decoder=False)
    # Model-only and coding-only parts of the same PNC encode, to see where the time goes.
    sym_cache: dict[int, np.ndarray] = {}

    def model_only(image: np.ndarray) -> None:
        sym_cache[id(image)] = pnc.features(image)

    def coding_only(image: np.ndarray) -> None:
        sym = sym_cache.get(id(image))
        if sym is None:
            sym = sym_cache[id(image)] = pnc.features(image)
        pnc.tables.encode(sym.reshape(pnc.channels, -1))

    codecs: list[tuple[str, Codec]] = [
        ("PNC (int8, 6-bit, Huffman)", pnc),
        ("PNC (fp32 encoder)", pnc_fp32),
        ("WebP m0 q0", WebpCodec(0, 0, size)),
        ("WebP m0 q20", WebpCodec(20, 0, size)),
        ("WebP m6 q0", WebpCodec(0, 6, size)),
        ("WebP m6 q20", WebpCodec(20, 6, size)),
        ("pjpeg q30", ProgressiveJpegCodec(30, size, block_size=None)),
    ]
    methods: list[Method] = [(name, codec, codec.encode) for name, codec in codecs]
    methods.insert(1, ("  PNC part: encoder model", None, model_only))
    methods.insert(2, ("  PNC part: quantise + Huffman", None, coding_only))
    return methods


def bench(
    sizes: Sequence[int] = (64, 224),
    images: int = 30,
    repeats: int = 3,
    assets: Path | None = None,
    tick: Callable[[str], None] = lambda _: None,
) -> list[Timing]:
    root = assets or assets_dir()
    rows: list[Timing] = []
    for size in sizes:
        data = procedural_shapes(BENCH_SEED, 0, images, size).images
        measured: list[Timing] = []
        for name, codec, fn in _methods(size, root):
            samples = np.array(_time(fn, data, repeats)) * 1000
            mean_bytes = (
                float(np.mean([codec.encode(im).size for im in data])) if codec else float("nan")
            )
            measured.append(
                Timing(size, name, float(samples.mean()), float(np.median(samples)), mean_bytes)
            )
            tick(f"{size} px {name.strip()}")
        webp = next(t for t in measured if t.method == "WebP m6 q20").mean_ms
        pjpeg = next(t for t in measured if t.method == "pjpeg q30").mean_ms
        rows += [
            Timing(
                t.image_size, t.method, t.mean_ms, t.median_ms, t.mean_bytes,
                t.mean_ms / webp, t.mean_ms / pjpeg,
                PAPER_PI4_MS.get(t.method) if size == 224 else None,
            )
            for t in measured
        ]  # fmt: skip
    return rows


# Rows per image size: PNC, its two parts, PNC fp32, four WebP settings, pjpeg q30.
METHODS_PER_SIZE = 9


def write_csv(path: Path, rows: Sequence[Timing]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["image_size", "method", "mean_ms", "median_ms", "mean_bytes",
             "ratio_to_webp_m6_q20", "ratio_to_pjpeg_q30", "paper_pi4_ms"]
        )  # fmt: skip
        for r in rows:
            writer.writerow(
                [r.image_size, r.method.strip(), f"{r.mean_ms:.4f}", f"{r.median_ms:.4f}",
                 f"{r.mean_bytes:.1f}", f"{r.ratio_to_webp_m6_q20:.4f}",
                 f"{r.ratio_to_pjpeg_q30:.4f}", "" if r.paper_pi4_ms is None else r.paper_pi4_ms]
            )  # fmt: skip
