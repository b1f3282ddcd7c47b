"""How much of the MDP -> clairvoyant gap can any causal policy close? The known-location bound.

On the issue's target cases (shipped costs, top-1 loss, locreset traces, r = 0.1, b = 4,
periodic arrivals, 100 streams x 10 000 images, seed 0) this runs every policy of the
`targets` rows through `evaluate.stream_losses` exactly as `experiments/offloading.py`
does (same traces, same shipped DQN card), plus the known-location oracle
(`policies/known_location.py`) told each stream's L_t, for several location bin counts.

The oracle knows at least as much as any causal policy, so (up to noise) its loss is a floor
for the DQN. Each policy is scored two ways on the same decisions:
- realised: the test images' actual rewards, as in the targets rows;
- expected: the planning value E[R | metric] of the offloaded images, where "oracle <= any
  causal policy" holds exactly in expectation (the realised scoring adds the test set's
  deviation from the regression, which is the same for every policy's choices on average).

The oracle is stationary (discounted, γ = 0.9999), while a stream ends after T images: a
policy that empties its bucket near the end can gain at most E_L[max_n̄ h(L, n̄) - min_n̄
h(L, n̄)] more in total (h: the oracle's relative values; L_T is uniform whatever the
policy does). The gap table also shows the oracle with that allowance / T taken off its
loss, the strictly conservative floor.

python benchmarks/known_location_bound.py OUT [--bins 1250,2500,5000,10000]
  [--full-spread-bins 50,100] [--streams 100] [--length 10000]

Writes OUT/known_location_losses.csv (one row per case and policy) and
OUT/known_location_gap.csv (the fraction of the MDP -> clairvoyant gap each closes).
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgebus.experiments.offloading import TARGET_CASES, read_costs, shipped_dqn
from edgebus.policies.clairvoyant import best_total
from edgebus.policies.dqn import load_dqn
from edgebus.policies.evaluate import Scenario, paired_difference, stream_losses, summarise
from edgebus.policies.known_location import (
    KnownLocationPolicy,
    solve_known_location,
    window_law,
)
from edgebus.policies.metric import KernelRegression
from edgebus.policies.policy import Policy, baseline, mdp, simulate
from edgebus.policies.token_bucket import BucketParams
from edgebus.policies.traces import locreset_indices

ORDER = (
    "weak_only",
    "strong_only",
    "lower_bound",
    "baseline",
    "mdp",
    "dqn",
    "known_location",
    "clairvoyant",
    "hindsight_unreachable",
)


@dataclass
class Recorder:
    """Passes a policy through unchanged and sums E[R | metric] over the offloads the bucket
    grants (the same rule as `TokenBuckets.step`), for the expected-value scoring."""

    inner: Policy
    params: BucketParams
    values: np.ndarray  # (streams, length): E[R | metric] of each trace image
    gain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _step: int = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def uses_bucket(self) -> bool:
        return self.inner.uses_bucket

    def reset(self, streams: int) -> None:
        self.inner.reset(streams)
        self.gain, self._step = np.zeros(streams), 0

    def wants(self, metrics: np.ndarray, levels: np.ndarray) -> np.ndarray:
        want = np.asarray(self.inner.wants(metrics, levels), dtype=bool)
        sent = want & (levels >= self.params.p) if self.uses_bucket else want
        self.gain += np.where(sent, self.values[:, self._step], 0.0)
        return want

    def observe(self, gaps: np.ndarray) -> None:
        self.inner.observe(gaps)
        self._step += 1


def gap_fraction(mdp_loss: np.ndarray, loss: np.ndarray, clair: np.ndarray) -> tuple[float, float]:
    """(MDP - policy) / (MDP - clairvoyant) of the stream means, with a delta-method s.e."""
    a, b = mdp_loss - loss, mdp_loss - clair
    frac = float(a.mean() / b.mean())
    return frac, float((a - frac * b).std(ddof=1) / np.sqrt(len(a)) / b.mean())


@dataclass(frozen=True)
class CaseResult:
    label: str
    scenario: Scenario
    realised: dict[str, np.ndarray]  # policy -> per-stream loss (targets-row scoring)
    expected: dict[str, np.ndarray]  # policy -> per-stream loss scored on E[R | metric]
    notes: list[str]
    allowance: dict[str, float]  # oracle name -> end-of-stream allowance per image


def run_case(label: str, scenario: Scenario, bins: list[int]) -> CaseResult:
    data, source = read_costs(None)
    regression = KernelRegression.fit(data.train.metric, data.train.reward)
    params = BucketParams.from_rate(scenario.rate, scenario.depth)
    test = data.test.sorted_by_metric()
    size = len(test.metric)
    idx, loc = locreset_indices(
        size,
        scenario.length,
        scenario.streams,
        scenario.spread,
        scenario.rprob,
        scenario.seed,
        return_location=True,
    )
    if not np.array_equal(idx, scenario.indices(size)):
        raise SystemExit("the location trace's indices differ from the targets' trace")
    x_sorted = regression(test.metric)
    x_trace = x_sorted[idx]
    notes: list[str] = []
    allowance: dict[str, float] = {}
    extra: list[Recorder] = []
    card = shipped_dqn(scenario, 97, source)
    if card is None:
        notes.append("no shipped DQN for this case")
    else:
        extra.append(Recorder(load_dqn(card), params, x_trace))
        notes.append(f"DQN: shipped:{card.stem}")
    for count in bins:
        start = time.perf_counter()
        law = window_law(x_sorted, scenario.spread, count)
        solution = solve_known_location(params, law, scenario.rprob)
        oracle = KnownLocationPolicy(
            f"known_location_{count}", params, solution.thresholds, size, loc, regression
        )
        level_span = solution.values.max(axis=1) - solution.values.min(axis=1)
        allowance[oracle.name] = float(law.share @ level_span) / scenario.length
        extra.append(Recorder(oracle, params, x_trace))
        notes.append(
            f"known_location_{count}: {solution.iterations} policy-iteration rounds, "
            f"{time.perf_counter() - start:.1f} s"
        )
    realised = stream_losses(data, scenario, extra, regression)
    weak = test.wcost[idx].sum(axis=1)
    images = scenario.length
    expected = {r.name: (weak - r.gain) / images for r in extra}
    # The threshold policies as `stream_losses` builds them, re-run to score them on x.
    gaps = scenario.gaps(scenario.seed)
    train_gaps = scenario.gaps(scenario.seed + 10_007)
    train = data.train
    for policy in (
        baseline(params, train.metric, float(train_gaps.mean())),
        mdp(params, train.metric, train.reward, train_gaps),
    ):
        gain = simulate(policy, params, test.metric[idx], x_trace, gaps).gain
        expected[policy.name] = (weak - gain) / images
    planned, _ = best_total(params, x_trace, gaps)
    expected["clairvoyant"] = (weak - planned) / images
    return CaseResult(label, scenario, realised, expected, notes, allowance)


def ordered(names: list[str]) -> list[str]:
    def key(name: str) -> tuple[int, int]:
        _, _, count = name.partition("_location_")
        head = "known_location" if count else name
        return ORDER.index(head) if head in ORDER else len(ORDER), int(count or 0)

    return sorted(names, key=key)


def fmt(mean: float, sem: float, signed: bool = False) -> str:
    return f"{mean:+.4f} ± {sem:.4f}" if signed else f"{mean:.4f} ± {sem:.4f}"


def compared(scores: dict[str, np.ndarray], name: str, refs: tuple[str, ...]) -> list[str]:
    """Loss ± s.e., then the stream-paired difference to each reference (blank for itself)."""
    cells = [fmt(*summarise(scores[name]))]
    for ref in refs:
        ok = ref in scores and name != ref
        cells.append(fmt(*paired_difference(scores[name], scores[ref]), signed=True) if ok else "")
    return cells


def numbers(scores: dict[str, np.ndarray], name: str, refs: tuple[str, ...]) -> list[str]:
    """The CSV twin of `compared`: mean and s.e. of the loss and of each paired difference."""
    if name not in scores:
        return [""] * (2 + 2 * len(refs))
    out = [f"{v:.6f}" for v in summarise(scores[name])]
    for ref in refs:
        ok = ref in scores and name != ref
        pair = paired_difference(scores[name], scores[ref]) if ok else None
        out += [f"{v:.6f}" for v in pair] if pair else ["", ""]
    return out


def report(results: list[CaseResult], out: Path) -> None:
    console = Console(width=200)
    loss_rows: list[list[str]] = []
    gap_rows: list[list[str]] = []
    for res in results:
        title = f"{res.label}: loss per image ± s.e. over {res.scenario.streams} streams"
        table = Table(title=f"{title} (− X: stream-paired difference to X)")
        refs = ("dqn", "mdp")
        table.add_column("policy")
        for col in ("loss (realised)", "− DQN", "− MDP", "loss (E[R|metric])", "− DQN", "− MDP"):
            table.add_column(col, justify="right")
        for name in ordered(list(res.realised)):
            row = [name, *compared(res.realised, name, refs)]
            row += compared(res.expected, name, refs) if name in res.expected else ["", "", ""]
            table.add_row(*row)
            realised, expected = (
                numbers(res.realised, name, refs),
                numbers(res.expected, name, refs),
            )
            loss_rows.append([res.label, name, *realised, *expected])
        console.print(table)
        for note in res.notes:
            console.print(f"  {note}")

        gap = Table(title=f"{res.label}: share of the MDP → clairvoyant gap closed (½ = target)")
        gap.add_column("policy")
        for col in (
            "realised",
            "E[R|metric]",
            "realised, end allowance",
            "E[R|metric], end allow.",
        ):
            gap.add_column(col, justify="right")
        for name in ordered([n for n in res.realised if n == "dqn" or n.startswith("known_")]):
            cells, record, loose = [name], [res.label, name], []
            for scores in (res.realised, res.expected):
                frac, sem = gap_fraction(scores["mdp"], scores[name], scores["clairvoyant"])
                width = summarise(scores["mdp"] - scores["clairvoyant"])
                cells.append(f"{100 * frac:.1f} % ± {100 * sem:.1f}")
                record += [f"{frac:.4f}", f"{sem:.4f}", f"{width[0]:.6f}", f"{width[1]:.6f}"]
                frac, text = np.nan, ""
                if name in res.allowance:
                    cut = scores[name] - res.allowance[name]
                    frac, sem = gap_fraction(scores["mdp"], cut, scores["clairvoyant"])
                    text = f"{100 * frac:.1f} % ± {100 * sem:.1f}"
                loose.append(text)
                record.append(f"{frac:.4f}")
            gap.add_row(*cells, *loose)
            record.append(f"{res.allowance.get(name, np.nan):.6f}")
            gap_rows.append(record)
        console.print(gap)

    out.mkdir(parents=True, exist_ok=True)
    with (out / "known_location_losses.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        cols = ("loss", "loss_sem", "minus_dqn", "minus_dqn_sem", "minus_mdp", "minus_mdp_sem")
        writer.writerow(["case", "policy", *cols, *(f"expected_{c}" for c in cols)])
        writer.writerows(loss_rows)
    with (out / "known_location_gap.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        cols = ("fraction", "fraction_sem", "gap", "gap_sem", "fraction_with_end_allowance")
        writer.writerow(
            ["case", "policy", *cols, *(f"expected_{c}" for c in cols), "end_allowance_per_image"]
        )
        writer.writerows(gap_rows)
    console.print(f"wrote {out / 'known_location_losses.csv'} and {out / 'known_location_gap.csv'}")


def counts(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the CSVs")
    parser.add_argument("--bins", type=counts, default=[1250, 2500, 5000, 10_000])
    parser.add_argument(
        "--full-spread-bins",
        type=counts,
        default=[50, 100],
        help="bins for sp = 1, where L barely matters and a bin's law spans all K images",
    )
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--length", type=int, default=10_000)
    args = parser.parse_args()
    start = time.perf_counter()
    results = []
    for label, knobs in TARGET_CASES.items():
        scenario = replace(Scenario(streams=args.streams, length=args.length), **knobs)
        bins = args.full_spread_bins if scenario.spread >= 0.5 else args.bins
        results.append(run_case(label, scenario, bins))
        print(f"{label}: done at {time.perf_counter() - start:.0f} s", flush=True)
    report(results, args.out)


if __name__ == "__main__":
    main()
