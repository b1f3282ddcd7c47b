"""Algorithm 1 of Amaizu et al.: find the smallest latent size d that keeps the QoS of the
full-size model, by binary search over d, keeping every model it trains.

The paper's pseudocode is fixed in four places:

- midpoints are integers, ``mid = (lo + hi) // 2``;
- the bounds move to ``mid + 1`` / ``mid - 1``, so the loop ends after at most
  ``ceil(log2 D)`` probes (as written, ``lo = mid`` never terminates);
- "Q_m reaches Q_h" means ``Q_m >= Q_h - tolerance`` (`QosRule.tolerance`), since two trained
  models never score exactly the same;
- continuous QoS values are bucketed with `QosRule.bucket`: ``floor(q / step)`` steps, so a
  bucket's key is its lower edge and a model belongs to the highest level it reaches.

The search assumes QoS(d) is non-decreasing in d up to the tolerance; where a real curve is
noisier than that, the answer can differ from an exhaustive sweep's, and the experiment
reports both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class SearchError(ValueError):
    """Bad search input (latent range, tolerance, bucket step)."""


@dataclass(frozen=True, slots=True)
class QosRule:
    """How QoS values are compared and bucketed (the defects fixed in Algorithm 1)."""

    tolerance: float = 0.01
    step: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise SearchError(f"tolerance: expected 0 <= tolerance < 1, got {self.tolerance}")
        if not 0 < self.step <= 1:
            raise SearchError(f"bucket step: expected 0 < step <= 1, got {self.step}")

    def reaches(self, q: float, target: float) -> bool:
        return q >= target - self.tolerance

    def bucket(self, q: float) -> float:
        """The lower edge of q's bucket, rounded so equal buckets compare equal."""
        # The small epsilon keeps 0.3 (stored as 0.29999…) in the 0.30 bucket.
        level = math.floor(q / self.step + 1e-9)
        return round(level * self.step, 10)


@dataclass(frozen=True, slots=True)
class Trial:
    """One trained model: its latent size, measured QoS and training wall time."""

    d: int
    qos: float
    seconds: float


@dataclass
class SearchResult:
    """What a search trained, in training order, and the smallest d it found."""

    strategy: str
    full_d: int
    target: float
    chosen_d: int | None  # None: no model reached the target
    trials: list[Trial] = field(default_factory=list)

    @property
    def models_trained(self) -> int:
        return len(self.trials)

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.trials)


Evaluate = Callable[[int], float]


def _timed(evaluate: Evaluate, d: int) -> Trial:
    start = time.perf_counter()
    q = float(evaluate(d))
    return Trial(d, q, time.perf_counter() - start)


def _check_range(full_d: int) -> None:
    if full_d < 1:
        raise SearchError(f"full latent size D: expected >= 1, got {full_d}")


def max_probes(full_d: int) -> int:
    """Models Algorithm 1 trains at most: the full-size model plus ceil(log2 D) probes."""
    _check_range(full_d)
    return 1 + math.ceil(math.log2(full_d)) if full_d > 1 else 1


def binary_search(
    full_d: int,
    evaluate: Evaluate,
    rule: QosRule,
    target: float | None = None,
    known: Iterable[Trial] = (),
) -> SearchResult:
    """Algorithm 1 with its defects fixed.

    The full-size model is trained first and sets the target Q_h (unless `target` is given,
    as when the pool is searched again for a lower QoS level). Only d in [1, D - 1] is then
    probed, since D itself is known. `known` trials (an earlier search's models) are reused
    instead of retrained.
    """
    _check_range(full_d)
    cache = {t.d: t for t in known}
    trials: list[Trial] = []

    def probe(d: int) -> float:
        if d not in cache:
            cache[d] = _timed(evaluate, d)
            trials.append(cache[d])
        return cache[d].qos

    q_full = probe(full_d)
    goal = q_full if target is None else target
    chosen = full_d if rule.reaches(q_full, goal) else None
    lo, hi = 1, full_d - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if rule.reaches(probe(mid), goal):
            chosen, hi = mid, mid - 1
        else:
            lo = mid + 1
    return SearchResult("binary", full_d, goal, chosen, trials)


def sweep(
    full_d: int, candidates: Iterable[int], evaluate: Evaluate, rule: QosRule, strategy: str
) -> SearchResult:
    """Train every candidate d (plus D for the target); the answer is the smallest d that
    reaches the full model's QoS."""
    _check_range(full_d)
    ds = sorted({int(d) for d in candidates if 1 <= int(d) < full_d})
    full = _timed(evaluate, full_d)
    trials = [full, *(_timed(evaluate, d) for d in ds)]
    reaching = [t.d for t in trials if rule.reaches(t.qos, full.qos)]
    return SearchResult(strategy, full_d, full.qos, min(reaching), trials)


def exhaustive(full_d: int, evaluate: Evaluate, rule: QosRule) -> SearchResult:
    return sweep(full_d, range(1, full_d), evaluate, rule, "all")


def step_sweep(
    full_d: int, evaluate: Evaluate, rule: QosRule, fraction: float = 0.1
) -> SearchResult:
    """The paper's 10%-step strategy: d = 10%, 20%, … of D."""
    if not 0 < fraction < 1:
        raise SearchError(f"step fraction: expected 0 < fraction < 1, got {fraction}")
    steps = round(1 / fraction)
    ds = [max(1, round(full_d * k * fraction)) for k in range(1, steps)]
    return sweep(full_d, ds, evaluate, rule, f"{round(100 * fraction)}% step")
