"""QoS estimation (paper Eq. 3) and the model choice of Algorithm 2 with its override rules.

Eq. 3 is E[Q | A] = x^T theta, linear in a context vector of model features and device
features. Here x = [1, Q_P(d), d / D, edge CPU, edge memory / 1 GiB], where Q_P(d) is the
QoS the pool measured for the model on the reference device. theta is fitted by ridge
regression pulled towards theta_0 = (0, 1, 0, 0, 0), i.e. "the device gets what the pool
measured", so with the pool's own measurements alone the estimate equals P; QoS reports
from real devices (`observe`) then refit theta online and move the estimate.

Algorithm 2 with the paper's overrides, in the order they are applied:

1. the edge has no resources (CPU or memory under `Policy`'s floor): send raw (CO);
2. the link carries raw frames at the requested frame rate: no compression is needed (CO);
3. otherwise the smallest d whose estimated QoS reaches the target (ECO; ECCD when an
   image-quality target asks for reconstructions);
4. if no model reaches the target, or the one that does needs more than the link carries,
   the best-estimated model that fits the link, marked as missing the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgebus.qos.compression_search import QosRule

RAW = "raw"
CONFIGURATIONS = ("CO", "ECO", "ECCD")


@dataclass(frozen=True, slots=True)
class PoolModel:
    """What the decision needs to know about one trained model."""

    model_id: str
    configuration: str  # ECO or ECCD
    d: int
    full_d: int
    accuracy: float  # measured on the reference device's test split
    psnr_db: float  # reconstruction quality of the decoder
    bytes_per_frame: int  # latent bytes on the wire, header included


@dataclass(frozen=True, slots=True)
class Device:
    cpu: float  # free share of the edge CPU, 0..1
    memory_mb: float  # free memory; 0 = not reported

    def features(self) -> list[float]:
        memory = 1.0 if self.memory_mb <= 0 else min(self.memory_mb / 1024.0, 1.0)
        return [self.cpu, memory]


REFERENCE_DEVICE = Device(cpu=1.0, memory_mb=0.0)


@dataclass(frozen=True, slots=True)
class QosTarget:
    accuracy: float
    bandwidth_bps: float
    device: Device = REFERENCE_DEVICE
    image_quality_db: float | None = None
    frame_rate: float = 2.0


@dataclass(frozen=True, slots=True)
class Decision:
    model_id: str  # RAW for CO
    configuration: str
    d: int
    estimated_accuracy: float
    bytes_per_frame: int
    meets_target: bool
    reasons: tuple[str, ...]


def context(model: PoolModel, device: Device) -> np.ndarray:
    """x_{t,A} of Eq. 3 for a model on a device."""
    return np.array([1.0, model.accuracy, model.d / model.full_d, *device.features()])


class LinearQosEstimator:
    """Eq. 3 with theta refitted by ridge regression towards theta_0 after every observation.

    Only the newest `window` observations are kept, so a device whose behaviour changes is
    tracked and the refit stays O(window)."""

    PRIOR = np.array([0.0, 1.0, 0.0, 0.0, 0.0])

    def __init__(self, ridge: float = 1.0, window: int = 500) -> None:
        self.ridge = ridge
        self.window = window
        self.theta = self.PRIOR.copy()
        self._x: list[np.ndarray] = []
        self._y: list[float] = []

    def estimate(self, model: PoolModel, device: Device) -> float:
        return float(context(model, device) @ self.theta)

    def estimate_many(self, models: Sequence[PoolModel], device: Device) -> np.ndarray:
        if not models:
            return np.empty(0)
        return np.stack([context(m, device) for m in models]) @ self.theta

    def observe(self, model: PoolModel, device: Device, measured: float) -> None:
        self._x.append(context(model, device))
        self._y.append(float(measured))
        del self._x[: -self.window], self._y[: -self.window]
        self.refit()

    def refit(self) -> None:
        if not self._x:
            self.theta = self.PRIOR.copy()
            return
        x = np.stack(self._x)
        y = np.asarray(self._y)
        a = x.T @ x + self.ridge * np.eye(x.shape[1])
        self.theta = np.linalg.solve(a, x.T @ y + self.ridge * self.PRIOR)

    @property
    def observations(self) -> int:
        return len(self._y)


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds of the override rules."""

    min_edge_cpu: float = 0.1
    min_edge_memory_mb: float = 64.0
    raw_bytes_per_frame: int = 28 * 28
    rule: QosRule = field(default_factory=QosRule)


def _bps(bytes_per_frame: int, frame_rate: float) -> float:
    return 8.0 * bytes_per_frame * frame_rate


def _raw(policy: Policy, target: QosTarget, reason: str, full_accuracy: float) -> Decision:
    return Decision(RAW, "CO", 0, full_accuracy, policy.raw_bytes_per_frame, True, (reason,))


def decide(
    target: QosTarget,
    models: Sequence[PoolModel],
    estimator: LinearQosEstimator,
    policy: Policy,
    cloud_accuracy: float,
) -> Decision:
    """Algorithm 2 with the overrides (module docstring); `cloud_accuracy` is CO's accuracy."""
    device = target.device
    if device.cpu < policy.min_edge_cpu or (0 < device.memory_mb < policy.min_edge_memory_mb):
        return _raw(
            policy,
            target,
            f"override: the edge has no resources (cpu {device.cpu:.2f}, memory "
            f"{device.memory_mb:g} MB; floors {policy.min_edge_cpu:.2f} and "
            f"{policy.min_edge_memory_mb:g} MB), so frames go raw",
            cloud_accuracy,
        )
    raw_need = _bps(policy.raw_bytes_per_frame, target.frame_rate)
    if target.bandwidth_bps >= raw_need:
        return _raw(
            policy,
            target,
            f"override: the link ({target.bandwidth_bps:,.0f} bit/s) carries raw frames "
            f"({raw_need:,.0f} bit/s at {target.frame_rate:g} fps), so no compression is needed",
            cloud_accuracy,
        )
    configuration = "ECCD" if target.image_quality_db is not None else "ECO"
    pool = sorted((m for m in models if m.configuration == configuration), key=lambda m: m.d)
    if not pool:
        raise LookupError(f"the model pool has no {configuration} models")
    estimates = estimator.estimate_many(pool, device)
    reaching = [
        (m, q)
        for m, q in zip(pool, estimates, strict=True)
        if policy.rule.reaches(float(q), target.accuracy)
        and (target.image_quality_db is None or m.psnr_db >= target.image_quality_db)
    ]
    fits = [
        (m, q)
        for m, q in zip(pool, estimates, strict=True)
        if _bps(m.bytes_per_frame, target.frame_rate) <= target.bandwidth_bps
    ]
    if reaching:
        model, q = reaching[0]
        reasons = [
            f"d = {model.d} is the smallest {configuration} latent whose estimated accuracy "
            f"{q:.3f} reaches {target.accuracy:.3f} (tolerance {policy.rule.tolerance:g})"
        ]
        if target.image_quality_db is not None:
            reasons.append(
                f"ECCD because an image quality of {target.image_quality_db:g} dB was asked; "
                f"this decoder gives {model.psnr_db:.1f} dB"
            )
        need = _bps(model.bytes_per_frame, target.frame_rate)
        if need <= target.bandwidth_bps:
            reasons.append(f"its {need:,.0f} bit/s fit the link's {target.bandwidth_bps:,.0f}")
            return Decision(
                model.model_id, configuration, model.d, float(q), model.bytes_per_frame, True,
                tuple(reasons),
            )  # fmt: skip
        reasons.append(f"but its {need:,.0f} bit/s exceed the link's {target.bandwidth_bps:,.0f}")
    else:
        best = int(np.argmax(estimates))
        reasons = [
            f"no {configuration} model reaches accuracy {target.accuracy:.3f} (best estimate "
            f"{float(estimates[best]):.3f} at d = {pool[best].d})"
        ]
    if not fits:
        model, q = pool[0], float(estimates[0])
        reasons.append(f"no model fits the link; the smallest (d = {model.d}) is used")
    else:
        model, q = max(fits, key=lambda pair: float(pair[1]))
        reasons.append(f"the best-estimated model that fits the link is used (d = {model.d})")
    return Decision(
        model.model_id, configuration, model.d, float(q), model.bytes_per_frame, False,
        tuple(reasons),
    )  # fmt: skip
