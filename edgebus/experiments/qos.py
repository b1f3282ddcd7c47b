"""`edgebus experiment qos`: the QoS orchestrator paper's Table 3, Table 4, Eqs. 7-9 and a
live switching run over the bus.

- search cost: binary search vs a 10% step sweep vs all d, same (small) recipe for all;
- data savings: bytes of 100 frames as FrameChunk payloads, CO vs ECO vs ECCD;
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

from edgebus.codecs.dense_ae import DenseAECodec, raw_decode
from edgebus.experiments.qos_live import LiveResult, live_switching
from edgebus.messages import FrameChunk, encode
from edgebus.ml.dense_ae import Recipe, train_dense
from edgebus.ml.qos_data import FlatSet, load_split
from edgebus.nodes.latent_transfer import RawEncode, raw_float16, raw_uint8
from edgebus.qos.compression_search import (
    QosRule,
    SearchResult,
    binary_search,
    exhaustive,
    step_sweep,
)
from edgebus.qos.model_store import ModelPool

Step = Callable[[str], None]
# Small enough that all 384 latent sizes of the accelerometer set train in minutes on one
# core, trained long enough (8000 windows, 5 epochs) that QoS(d) is close to monotone.
SEARCH_RECIPE = Recipe(hidden=(32,), head_hidden=16, epochs=5, batch_size=128, ce_weight=1.0)
SEARCH_TRAIN, SEARCH_HELD_OUT = 8000, 1000
T = TypeVar("T")


# --- Table 3: search cost ------------------------------------------------------------------


def search_cost(
    train: FlatSet, test: FlatSet, rule: QosRule, sweep_all: bool, step: Step
) -> list[SearchResult]:
    def evaluate(d: int) -> float:
        return train_dense("eco", d, train, test, SEARCH_RECIPE).scores.accuracy

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


def raw_wire(item_bytes: int) -> tuple[RawEncode, Callable[[bytes], np.ndarray]]:
    """CO's byte format: images as uint8 (1 byte per pixel), accelerometer windows as
    little-endian float16 (2 bytes per value)."""
    return (raw_uint8 if item_bytes == 1 else raw_float16), partial(
        raw_decode, item_bytes=item_bytes
    )


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, 1000 * (time.perf_counter() - start)


def _classify_raw(
    cloud_raw: Callable[[np.ndarray], np.ndarray], decode: Callable[[bytes], np.ndarray],
    data: bytes,
) -> np.ndarray:  # fmt: skip
    return cloud_raw(decode(data)[None])[0]


def job_cost(
    pool: ModelPool, frames: FlatSet, cloud_raw: Callable[[np.ndarray], np.ndarray],
    bandwidth_bps: float, chosen: dict[str, str],
) -> list[JobRow]:  # fmt: skip
    """100 frames through CO, ECO and ECCD; bytes as sent (payload and whole message)."""
    raw_encode, raw_decode = raw_wire(pool.raw_item_bytes)
    rows: list[JobRow] = []
    for configuration in ("CO", "ECO", "ECCD"):
        codec = None if configuration == "CO" else DenseAECodec.from_bundle(
            pool.bundle(chosen[configuration]))  # fmt: skip
        model_id = "raw" if codec is None else codec.model_id
        totals = np.zeros(4)
        payload = message = correct = 0
        for i, x in enumerate(frames.x):
            if codec is None:
                data, e_ms = _timed(partial(raw_encode, x))
                d_ms = 0.0
                logits, c_ms = _timed(partial(_classify_raw, cloud_raw, raw_decode, data))
            else:
                data, e_ms = _timed(partial(codec.encode, x))
                d_ms = 0.0
                if codec.configuration == "ECCD":
                    _, d_ms = _timed(partial(codec.reconstruct, data))
                logits, c_ms = _timed(partial(codec.classify, data))
            chunk = FrameChunk("cam-1", i, 0, "dense_ae", model_id, 0.0, data)
            size = len(encode(chunk))
            t_ms = 1000 * 8 * size / bandwidth_bps
            totals += (e_ms, d_ms, c_ms, t_ms)
            payload += len(data)
            message += size
            correct += int(np.argmax(logits) == frames.y[i])
        n = len(frames)
        encode_ms, decode_ms, classify_ms, transfer_ms = (totals / n).tolist()
        rows.append(JobRow(
            configuration, model_id, 0 if codec is None else codec.latent_dim, n, payload,
            message, 0.0, encode_ms, decode_ms, classify_ms, transfer_ms,
            float(totals.sum() / 1000), 0.0, correct / n,
        ))  # fmt: skip
    co = rows[0]
    for row in rows:
        row.saving_pct = 100 * (co.message_bytes - row.message_bytes) / co.message_bytes
        row.gain_vs_co_pct = 100 * (co.total_s - row.total_s) / co.total_s
    return rows


# --- driver -------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class QosExperiment:
    searches: list[SearchResult]
    jobs: list[JobRow]
    live: LiveResult
    pool: ModelPool


def run(
    out: Path, pool_dir: Path, sweep_all: bool, changes: int, bandwidth_bps: float, step: Step,
    seed: int = 0, broker_url: str | None = None, prefetch: bool = False,
    search_dataset: str = "accelerometer",
) -> QosExperiment:  # fmt: skip
    import torch

    from edgebus.ml.dense_ae import train_cloud_classifier

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    pool = ModelPool.load(pool_dir)
    train, _, test = load_split(search_dataset, seed, SEARCH_TRAIN, 0, SEARCH_HELD_OUT)
    searches = search_cost(train, test, pool.rule, sweep_all, step)
    _write_csv(out / "search_cost.csv", [
        {"dataset": search_dataset, "strategy": s.strategy, "models": s.models_trained,
         "seconds": round(s.seconds, 2), "chosen_d": s.chosen_d, "target": round(s.target, 4),
         "chosen_qos": round(_qos_at(s, s.chosen_d), 4),
         "chosen_bucket": pool.rule.bucket(_qos_at(s, s.chosen_d)),
         "matches_all_d": s.chosen_d == searches[-1].chosen_d} for s in searches
    ])  # fmt: skip
    _write_csv(out / "search_trials.csv", [
        {"strategy": s.strategy, **asdict(t)} for s in searches for t in s.trials
    ])  # fmt: skip
    cloud, _ = train_cloud_classifier(*load_split(pool.dataset, seed, 6000, 0, 1)[::2], Recipe())

    def cloud_raw(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return cloud(torch.from_numpy(x)).numpy()

    chosen = {c: _chosen(pool, c) for c in ("ECO", "ECCD")}
    frames = load_split(pool.dataset, seed + 1, 0, 0, 100)[2]
    jobs = job_cost(pool, frames, cloud_raw, bandwidth_bps, chosen)
    _write_csv(out / "job_cost.csv", [asdict(j) for j in jobs])
    step("job cost done")
    live = asyncio.run(live_switching(
        pool, lambda i: frames.x[i % len(frames)], changes, seed, step,
        DenseAECodec.from_bundle, broker_url, prefetch, raw=raw_wire(pool.raw_item_bytes)[0],
    ))  # fmt: skip
    _write_csv(out / "live_switching.csv", [asdict(r) for r in live.rows])
    _plot(out / "qos.png", searches, jobs, live)
    return QosExperiment(searches, jobs, live, pool)


def _qos_at(search: SearchResult, d: int | None) -> float:
    return next((t.qos for t in search.trials if t.d == d), float("nan"))


def _chosen(pool: ModelPool, configuration: str) -> str:
    """The model Algorithm 1 picked for the configuration (the last search's answer)."""
    for search in reversed(pool.searches):
        if search["configuration"] == configuration and search["chosen_d"] is not None:
            return f"{pool.dataset}-{configuration.lower()}-d{search['chosen_d']}"
    smallest = min((m for m in pool.models.values() if m.configuration == configuration),
                   key=lambda m: m.d)  # fmt: skip
    return smallest.model_id


def _plot(path: Path, searches: list[SearchResult], jobs: list[JobRow], live: LiveResult) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for s in searches:
        trials = sorted(s.trials, key=lambda t: t.d)
        style = ".-" if len(trials) < 50 else "-"
        label = f"{s.strategy} ({s.models_trained} models)"
        axes[0].plot([t.d for t in trials], [t.qos for t in trials], style, label=label, alpha=0.7)
    axes[0].set(xscale="log", xlabel="latent size d", ylabel="ECO accuracy", title="search cost")
    axes[0].legend()
    axes[1].bar([j.configuration for j in jobs], [j.message_bytes / 1000 for j in jobs])
    axes[1].set(ylabel="kB for 100 frames", title="data sent (Table 4)")
    latencies = sorted(live.latencies())
    axes[2].plot(latencies, np.linspace(0, 1, len(latencies)))
    axes[2].set(xlabel="switch latency (ms)", ylabel="CDF", title=f"{len(latencies)} live switches")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
