"""`edgebus experiment qos`: the QoS orchestrator paper's Fig. 11 (as a table), Table 3,
Table 4, Eqs. 7-9 on one data set (Fashion-MNIST, the paper's, by default) and a live
switching run over the bus.

- accuracy by compression rate (qos_accuracy.py): CO, ECO, ECCD, AE and PCA at the paper's
  five rates, on the test images;
- search cost: binary search vs a 10% step sweep vs all d, same (small) recipe for all;
- data savings: bytes of 100 test frames as FrameChunk payloads, CO vs ECO vs ECCD at the
  paper's d = 39 (CR 95 %), with the accuracy table's models;
- job cost: per frame E_t (encode), D_t (decode, ECCD), C_t (classify), T_t (transfer on
  an emulated link), C_p = E_t + D_t + C_t + T_t (Eq. 7), C_T = sum of C_p (Eq. 8, the
  cloud-function start-up T_c is 0 here), E_a against CO (Eq. 9);
- live switching (qos_live.py): an orchestrator, a sender and two receivers on a broker,
  with `changes` QoS requests at random times; each switch's latency is from the request's
  publication to the last node's ack.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from edgebus.codecs.dense_ae import DenseAECodec, raw_encode
from edgebus.experiments.qos_accuracy import (
    BASELINES,
    CONFIGURATIONS,
    AccuracyTable,
    accuracy_by_rate,
    latent_for_rate,
)
from edgebus.experiments.qos_live import LiveResult, live_switching
from edgebus.messages import FrameChunk, encode
from edgebus.ml.dense_ae import Recipe, train_dense
from edgebus.ml.qos_data import FlatSet, load_split
from edgebus.qos.compression_search import (
    QosRule,
    SearchResult,
    binary_search,
    exhaustive,
    step_sweep,
)
from edgebus.qos.model_store import ModelPool, model_id_for
from edgebus.qos.qos_model import RAW

Step = Callable[[str], None]
# Small enough that every latent size trains in minutes (accelerometer, D = 384: 462 s;
# Fashion-MNIST, D = 784: 817 s), long enough (8000 items, 5 epochs) that QoS(d) rises
# to its plateau; on the plateau it varies by the held-out set's sampling error.
SEARCH_RECIPE = Recipe(hidden=(32,), head_hidden=16, epochs=5, batch_size=128, ce_weight=1.0)
SEARCH_TRAIN, SEARCH_HELD_OUT = 8000, 1000
T = TypeVar("T")


# --- Table 3: search cost ------------------------------------------------------------------


def search_cost(
    train: FlatSet, held_out: FlatSet, rule: QosRule, recipe: Recipe, sweep_all: bool,
    step: Step,
) -> list[SearchResult]:  # fmt: skip
    def evaluate(d: int) -> float:
        return train_dense("eco", d, train, held_out, recipe).scores.accuracy

    results = [binary_search(train.dim, evaluate, rule)]
    step("search: binary done")
    results.append(step_sweep(train.dim, evaluate, rule))
    step("search: 10% step done")
    if sweep_all:
        results.append(exhaustive(train.dim, evaluate, rule))
        step("search: all d done")
    return results


# --- Table 4 and Eqs. 7-9: data and job cost --------------------------------------------


@dataclass
class JobRow:
    configuration: str
    model_id: str
    d: int
    frames: int
    payload_bytes: int
    message_bytes: int
    saving_pct: float
    encode_ms: float
    decode_ms: float
    classify_ms: float
    transfer_ms: float
    total_s: float
    gain_vs_co_pct: float
    accuracy: float


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, 1000 * (time.perf_counter() - start)


def job_cost(
    pool: ModelPool, frames: FlatSet, bandwidth_bps: float, chosen: dict[str, str]
) -> list[JobRow]:
    """Frames through CO (the pool's raw classifier), ECO and ECCD (`chosen` names their
    models); bytes as sent (payload and whole FrameChunk message); E_t, D_t, C_t timed per
    frame on onnxruntime and T_t computed on a link of `bandwidth_bps`."""
    rows: list[JobRow] = []
    for configuration in ("CO", "ECO", "ECCD"):
        codec = DenseAECodec.from_bundle(pool.bundle(chosen.get(configuration, RAW)))
        totals = np.zeros(4)
        payload = message = correct = 0
        for i, x in enumerate(frames.x):
            data, e_ms = _timed(partial(codec.encode, x))
            d_ms = 0.0
            if codec.configuration == "ECCD":
                x_hat, d_ms = _timed(partial(codec.reconstruct, data))
                logits, c_ms = _timed(partial(codec.classify_reconstruction, x_hat))
            else:
                logits, c_ms = _timed(partial(codec.classify, data))
            chunk = FrameChunk("cam-1", i, 0, "dense_ae", codec.model_id, 0.0, data)
            size = len(encode(chunk))
            t_ms = 1000 * 8 * size / bandwidth_bps
            totals += (e_ms, d_ms, c_ms, t_ms)
            payload += len(data)
            message += size
            correct += int(np.argmax(logits) == frames.y[i])
        n = len(frames)
        encode_ms, decode_ms, classify_ms, transfer_ms = (totals / n).tolist()
        d = pool.dim if codec.configuration == "CO" else codec.latent_dim
        rows.append(JobRow(
            configuration, codec.model_id, d, n, payload, message, 0.0, encode_ms, decode_ms,
            classify_ms, transfer_ms, float(totals.sum() / 1000), 0.0, correct / n,
        ))  # fmt: skip
    co = rows[0]
    for row in rows:
        row.saving_pct = 100 * (co.message_bytes - row.message_bytes) / co.message_bytes
        row.gain_vs_co_pct = 100 * (co.total_s - row.total_s) / co.total_s
    return rows


# --- driver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QosPreset:
    """Sizes of one run. The accuracy table's models (Fig. 11, and Table 4's d = 39) use
    `table_recipe`; the three search strategies (Table 3) share the small `search_recipe`,
    because "all d" trains D models."""

    name: str
    table_train: int
    table_test: int
    table_recipe: Recipe
    search_train: int
    search_held_out: int
    search_recipe: Recipe
    sweep_all: bool
    changes: int


# The paper's dense AE is D-1000-500-250-d (Table 2; batch 256, 100 epochs). The full
# preset halves every width and trains 15 epochs, which keeps the run to minutes per model
# on two CPU cores; the paper's 80/20 split of the 60,000 training images is kept for the
# pool, and every accuracy here is on the 10,000 test images.
PRESETS = {
    "quick": QosPreset(
        "quick", 3000, 1000, Recipe(hidden=(64, 32), head_hidden=32, epochs=3), 2000, 500,
        Recipe(hidden=(16,), head_hidden=8, epochs=2, batch_size=128, ce_weight=1.0), False, 10,
    ),
    "full": QosPreset(
        "full", 48000, 10000, Recipe(hidden=(500, 250, 125), head_hidden=64, epochs=15),
        SEARCH_TRAIN, SEARCH_HELD_OUT, SEARCH_RECIPE, True, 100,
    ),
}  # fmt: skip
TABLE4_RATE_PCT = 95.0  # the paper's Table 4: d = 39 of 784 (CR 95 %)
JOB_FRAMES = 100  # the paper sends 100 files per run


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class QosExperiment:
    data: str
    accuracy: AccuracyTable
    searches: list[SearchResult]
    jobs: list[JobRow]
    live: LiveResult
    pool: ModelPool  # the live run's pool


def run(
    out: Path, pool_dir: Path, data: str, preset: QosPreset, bandwidth_bps: float, step: Step,
    seed: int = 0, broker_url: str | None = None, prefetch: bool = False,
    sweep_all: bool | None = None, changes: int | None = None,
) -> QosExperiment:  # fmt: skip
    """Fig. 11 as a table, Table 3, Table 4 with Eqs. 7-9 on `data`, then live switching on
    the pool at `pool_dir`; every part writes its CSV under `out`, and qos.png sums up."""
    import torch

    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    live_pool = ModelPool.load(pool_dir)
    train, _, test = load_split(data, seed, preset.table_train, 0, preset.table_test)
    shutil.rmtree(out / "pool", ignore_errors=True)  # a fresh pool: versions start at 1
    table = accuracy_by_rate(out / "pool", train, test, preset.table_recipe, step)
    _write_csv(out / "accuracy_by_rate.csv", [asdict(r) for r in table.rows])
    search_train, search_held_out, _ = load_split(
        data, seed, preset.search_train, preset.search_held_out, 0
    )
    searches = search_cost(
        search_train, search_held_out, live_pool.rule, preset.search_recipe,
        preset.sweep_all if sweep_all is None else sweep_all, step,
    )  # fmt: skip
    _write_csv(out / "search_cost.csv", [
        {"dataset": data, "strategy": s.strategy, "models": s.models_trained,
         "seconds": round(s.seconds, 2), "chosen_d": s.chosen_d, "target": round(s.target, 4),
         "chosen_qos": round(_qos_at(s, s.chosen_d), 4),
         "chosen_bucket": live_pool.rule.bucket(_qos_at(s, s.chosen_d)),
         "matches_all_d": s.chosen_d == searches[-1].chosen_d} for s in searches
    ])  # fmt: skip
    _write_csv(out / "search_trials.csv", [
        {"strategy": s.strategy, **asdict(t)} for s in searches for t in s.trials
    ])  # fmt: skip
    d = latent_for_rate(train.dim, TABLE4_RATE_PCT)
    chosen = {c: model_id_for(data, c, d) for c in CONFIGURATIONS}
    jobs = job_cost(table.pool.pool, test.take(0, JOB_FRAMES), bandwidth_bps, chosen)
    _write_csv(out / "job_cost.csv", [asdict(j) for j in jobs])
    step("job cost done")
    frames = load_split(live_pool.dataset, seed + 1, 0, 0, JOB_FRAMES)[2]
    raw = partial(raw_encode, item_bytes=live_pool.raw_item_bytes)  # CO's byte format
    live = asyncio.run(live_switching(
        live_pool, lambda i: frames.x[i % len(frames)], preset.changes if changes is None
        else changes, seed, step, DenseAECodec.from_bundle, broker_url, prefetch, raw=raw,
    ))  # fmt: skip
    _write_csv(out / "live_switching.csv", [asdict(r) for r in live.rows])
    _plot(out / "qos.png", data, table, searches, jobs, live)
    return QosExperiment(data, table, searches, jobs, live, live_pool)


def _qos_at(search: SearchResult, d: int | None) -> float:
    return next((t.qos for t in search.trials if t.d == d), float("nan"))


def _plot(
    path: Path, data: str, table: AccuracyTable, searches: list[SearchResult],
    jobs: list[JobRow], live: LiveResult,
) -> None:  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    co = next(r for r in table.rows if r.configuration == "CO")
    axes[0].axhline(co.accuracy, color="grey", linestyle="--", label="CO (raw)")
    for configuration in (*CONFIGURATIONS, *BASELINES):
        rows = [r for r in table.rows if r.configuration == configuration]
        axes[0].plot([r.rate_pct for r in rows], [r.accuracy for r in rows], "o-",
                     label=configuration)  # fmt: skip
    axes[0].set(xlabel="compression rate % (Eq. 1)", ylabel="test accuracy",
                title=f"accuracy vs compression ({data})")  # fmt: skip
    axes[0].legend()
    for s in searches:
        trials = sorted(s.trials, key=lambda t: t.d)
        style = ".-" if len(trials) < 50 else "-"
        label = f"{s.strategy} ({s.models_trained} models)"
        axes[1].plot([t.d for t in trials], [t.qos for t in trials], style, label=label, alpha=0.7)
    axes[1].set(xscale="log", xlabel="latent size d", ylabel="ECO accuracy", title="search cost")
    axes[1].legend()
    axes[2].bar([j.configuration for j in jobs], [j.message_bytes / 1000 for j in jobs])
    axes[2].set(ylabel=f"kB for {jobs[0].frames} frames", title="data sent (Table 4)")
    latencies = sorted(live.latencies())
    axes[3].plot(latencies, np.linspace(0, 1, len(latencies)))
    axes[3].set(xlabel="switch latency (ms)", ylabel="CDF", title=f"{len(latencies)} live switches")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
