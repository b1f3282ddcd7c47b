"""The QoS-features map P (paper Eq. 4) and its diagnostics (Sec. 4.2, Eqs. 5-6).

P has one row per QoS level (a bucket of `QosRule`); each row lists the latent sizes whose
models reached that level. Every model the search trains is added ("modularised").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from edgebus.qos.compression_search import QosRule, Trial


@dataclass(frozen=True, slots=True)
class LevelRange:
    """One row of P: its QoS level and the latent sizes in it."""

    level: float
    sizes: tuple[int, ...]

    @property
    def compression_range(self) -> int:
        """Eq. 5: |d_first - d_last| among the models that reach this level."""
        return abs(self.sizes[-1] - self.sizes[0])


@dataclass(frozen=True, slots=True)
class Transition:
    """Features that must be added to move from one QoS level to the next one up."""

    from_level: float
    to_level: float
    from_d: int
    to_d: int

    @property
    def added_features(self) -> int:
        return self.to_d - self.from_d


class QosMap:
    """P: QoS level -> sorted latent sizes."""

    def __init__(self, rule: QosRule, trials: Iterable[Trial] = ()) -> None:
        self.rule = rule
        self.rows: dict[float, list[int]] = {}
        self.qos_of: dict[int, float] = {}
        for trial in trials:
            self.add(trial.d, trial.qos)

    def add(self, d: int, qos: float) -> None:
        """Modularise: put d in the row of its QoS bucket (a retrained d moves rows)."""
        old = self.qos_of.get(d)
        if old is not None:
            row = self.rows[self.rule.bucket(old)]
            row.remove(d)
            if not row:
                del self.rows[self.rule.bucket(old)]
        self.qos_of[d] = qos
        row = self.rows.setdefault(self.rule.bucket(qos), [])
        row.append(d)
        row.sort()

    def levels(self) -> list[LevelRange]:
        return [LevelRange(level, tuple(self.rows[level])) for level in sorted(self.rows)]

    def smallest_reaching(self, target: float) -> int | None:
        """min{d in P[q] : q >= bucket(target)}: the smallest model at or above the level."""
        floor = self.rule.bucket(target)
        candidates = [row[0] for level, row in self.rows.items() if level >= floor]
        return min(candidates) if candidates else None

    def qos_range(self) -> float:
        """Eq. 6: Q_max - Q_min over the pool."""
        values = list(self.qos_of.values())
        return max(values) - min(values) if values else 0.0

    def transitions(self) -> list[Transition]:
        """For each pair of consecutive levels, the features between their smallest models."""
        smallest = [(level, row[0]) for level, row in sorted(self.rows.items())]
        return [
            Transition(a_level, b_level, a_d, b_d)
            for (a_level, a_d), (b_level, b_d) in itertools.pairwise(smallest)
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "tolerance": self.rule.tolerance,
            "step": self.rule.step,
            "qos": {str(d): q for d, q in sorted(self.qos_of.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> QosMap:
        rule = QosRule(_number(data, "tolerance"), _number(data, "step"))
        qos = data["qos"]
        if not isinstance(qos, dict):
            raise ValueError("QoS map: 'qos' must map latent sizes to QoS values")
        return cls(rule, (Trial(int(d), float(q), 0.0) for d, q in qos.items()))


def _number(data: dict[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"QoS map: {key!r} must be a number, got {value!r}")
    return float(value)
