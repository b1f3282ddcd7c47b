"""The camera's per-frame offloading decision under a token bucket (offloading paper, on
the bus): weak model -> metric -> policy -> bucket.

Every frame is classified by the camera's weak model. Its logits give the offloading metric
(the fitted metric of the costs file the policy was made from, so camera and simulator
agree), and the `OffloadDecider` refills the bucket by the slots since the previous frame,
asks the policy and spends a token when the answer is yes. A frame that stays keeps the
weak model's answer, which the camera publishes as its result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from edgebus.codecs.classifier import Classifier, softmax
from edgebus.config import OFFLOAD_MODES
from edgebus.nodes.sources import CapturedFrame, fit_image
from edgebus.policies.costs import load_camera_metric, load_costs
from edgebus.policies.runtime import Decision, OffloadDecider, policy_for, shipped_costs_path
from edgebus.policies.token_bucket import BucketParams

TOP_K = 5


@dataclass(frozen=True, slots=True)
class WeakAnswer:
    """The weak model's verdict on a frame and the decision taken with it."""

    top_k: list[int]
    scores: list[float]
    metric: float
    gap: int
    decision: Decision
    bucket: tuple[int, int, int]  # (N, P, M) of the integer bucket the levels are in
    names: tuple[str, ...] = ()  # the weak model's names of top_k


@dataclass(frozen=True, slots=True)
class Admission:
    offload: bool
    weak: WeakAnswer | None = None  # None when no weak model ran (offloading off)


ADMIT_ALL = Admission(True)


class OffloadGate(Protocol):
    """Decides, per frame, whether it goes to the encoder and the uplink."""

    async def admit(self, frame: CapturedFrame) -> Admission: ...


class OffloadEveryFrame:
    """Offloading off: every frame goes to the encoder and the uplink."""

    async def admit(self, frame: CapturedFrame) -> Admission:
        return ADMIT_ALL


class PolicyGate:
    """One camera's weak model, metric, policy and token bucket (full at start)."""

    def __init__(
        self,
        mode: str,
        rate: float,
        depth: float,
        period_s: float,
        costs_path: str | Path = "",
        dqn_card: str | Path = "",
        weak: Classifier | None = None,
        weak_model: str = "weak",
    ) -> None:
        if mode not in OFFLOAD_MODES[1:]:
            raise ValueError(
                f"offload mode must be one of {', '.join(OFFLOAD_MODES[1:])}, got {mode!r}"
            )
        self.mode = mode
        self.params = BucketParams.from_rate(rate, depth)
        # Costs and the DQN default to the ones measured on this weak model's outputs.
        costs_file = Path(costs_path) if costs_path else shipped_costs_path(weak_model)
        self.metric = load_camera_metric(costs_file)
        policy = policy_for(
            mode, self.params, load_costs(costs_file), Path(dqn_card) if dqn_card else None,
            weak=weak_model,
        )  # fmt: skip
        self.decider = OffloadDecider(policy, self.params)
        self.weak = weak or Classifier(weak_model)
        self.period_s = period_s
        self._previous_capture: float | None = None

    def _slots_since_previous(self, capture_mono: float) -> int:
        # A camera that fell behind skipped capture slots; the bucket refills for them too.
        if self._previous_capture is None:
            gap = 1
        else:
            gap = max(1, round((capture_mono - self._previous_capture) / self.period_s))
        self._previous_capture = capture_mono
        return gap

    def _logits(self, image: np.ndarray) -> np.ndarray:
        size = self.weak.image_size
        if image.shape[:2] != (size, size):
            image = fit_image(Image.fromarray(image), size)
        return self.weak.logits(image)[0].astype(np.float64)

    async def admit(self, frame: CapturedFrame) -> Admission:
        logits = await asyncio.to_thread(self._logits, frame.image)
        metric = float(self.metric(logits[None])[0])
        gap = self._slots_since_previous(frame.capture_mono)
        decision = self.decider.decide(metric, gap)
        probs = softmax(logits)
        order = np.argsort(-probs)[:TOP_K]
        weak = WeakAnswer(
            [int(i) for i in order],
            [float(probs[i]) for i in order],
            metric,
            gap,
            decision,
            (self.params.n, self.params.p, self.params.m),
            tuple(self.weak.class_names[int(i)] for i in order),
        )
        return Admission(decision.offload, weak)
