"""Drift monitor: the reconstruction error of paper Eq. 2 tracked per stream.

A node that decodes (ECCD) feeds each frame's input and reconstruction to `observe`. The
error is the mean squared error of the frame, smoothed per stream by an exponential
moving average so one odd frame does not raise an alarm. When the average crosses
`threshold` a `DriftAlert` is published on `model/drift` (once per crossing); the stream
is re-armed when its average falls back under `rearm * threshold`. The coordinator
records the alert and may retrain on it (orchestrator.py, `on_drift`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from edgebus.broker.bus import Bus
from edgebus.clock import Clock, RealClock
from edgebus.messages import DriftAlert
from edgebus.topics import Topics

log = logging.getLogger("edgebus.drift")


class DriftConfigError(ValueError):
    """A threshold, smoothing factor or re-arm fraction out of range."""


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Eq. 2 for one frame: the mean squared difference of input and reconstruction."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x_hat = np.asarray(x_hat, dtype=np.float64).ravel()
    if x.shape != x_hat.shape:
        raise ValueError(f"reconstruction of {x_hat.size} values for an input of {x.size}")
    return float(np.mean((x - x_hat) ** 2))


@dataclass
class _Stream:
    average: float
    alerted: bool = False
    frames: int = 0


@dataclass
class DriftMonitor:
    bus: Bus
    topics: Topics
    threshold: float
    smoothing: float = 0.1  # weight of the newest frame in the moving average
    rearm: float = 0.8
    clock: Clock = field(default_factory=RealClock)
    streams: dict[str, _Stream] = field(default_factory=dict)
    alerts: int = 0

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise DriftConfigError(f"drift threshold: expected > 0, got {self.threshold}")
        if not 0 < self.smoothing <= 1:
            raise DriftConfigError(f"drift smoothing: expected 0 < a <= 1, got {self.smoothing}")
        if not 0 < self.rearm <= 1:
            raise DriftConfigError(f"drift re-arm: expected 0 < r <= 1, got {self.rearm}")

    async def observe(
        self, stream: str, model_id: str, x: np.ndarray, x_hat: np.ndarray
    ) -> DriftAlert | None:
        """Track one frame; publishes and returns the alert when this frame crosses."""
        error = reconstruction_error(x, x_hat)
        state = self.streams.get(stream)
        if state is None:
            state = self.streams[stream] = _Stream(error)
        else:
            state.average += self.smoothing * (error - state.average)
        state.frames += 1
        if state.alerted:
            state.alerted = state.average >= self.rearm * self.threshold
            return None
        if state.average < self.threshold:
            return None
        state.alerted = True
        self.alerts += 1
        alert = DriftAlert(stream, model_id, state.average, self.threshold, ts=self.clock.time())
        log.warning("drift on %s (%s): error %.4g over %.4g", stream, model_id, alert.error,
                    self.threshold)  # fmt: skip
        await self.bus.publish(self.topics.model_drift(), alert, qos=1)
        return alert
