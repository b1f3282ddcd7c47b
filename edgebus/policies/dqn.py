"""The DQN offloading policy at run time: numpy or onnxruntime, no torch.

The network sees only the recent history X of one stream: its last `metrics` offloading
metrics (the current image first) and, for bursty arrivals, its last `gaps` inter-arrival
gaps (the gap that brought the current image first). It outputs one Q-value per
(bucket level, action) pair, laid out as

    [Q(N, 0) .. Q(M, 0) | Q(P, 1) .. Q(M, 1)]

so (M - N + 1) + (M - P + 1) values. An image is offloaded iff Q(n̄, 1) >= Q(n̄, 0) at the
current level n̄ (which must be >= P; the bucket enforces that).

A policy file is an ONNX model plus a JSON card next to it (`dqn_*.json`) holding the
bucket (N, P, M), the history sizes and how it was trained.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebus.policies.token_bucket import BucketParams

INPUT_NAME = "history"
OUTPUT_NAME = "q"
LEAKY_SLOPE = 0.2


class PolicyFileError(ValueError):
    """A DQN card or model that cannot be used; the message names the file."""


def q_size(params: BucketParams) -> int:
    return (params.m - params.n + 1) + (params.m - params.p + 1)


def send_decisions(q: np.ndarray, params: BucketParams) -> np.ndarray:
    """(batch, M-P+1) booleans: offload at level P+j iff Q(P+j, 1) >= Q(P+j, 0)."""
    keep = q[:, params.p - params.n : params.m - params.n + 1]
    send = q[:, params.m - params.n + 1 :]
    return send >= keep


@dataclass(frozen=True)
class DQNSpec:
    """Everything a runtime needs besides the weights."""

    n: int
    p: int
    m: int
    metrics: int = 96  # history T - 1 of the paper: the current metric and 95 before it
    gaps: int = 0  # 0 for periodic arrivals, where the gaps carry nothing
    hidden: int = 64
    layers: int = 5

    def __post_init__(self) -> None:
        if self.metrics < 1 or self.gaps < 0:
            raise ValueError(
                f"DQN: history needs >= 1 metric and >= 0 gaps, got {self.metrics}, {self.gaps}"
            )

    @property
    def params(self) -> BucketParams:
        return BucketParams(self.n, self.p, self.m)

    @property
    def inputs(self) -> int:
        return self.metrics + self.gaps

    @property
    def outputs(self) -> int:
        return q_size(self.params)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "DQN card") -> DQNSpec:
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise PolicyFileError(f"{source}: not a DQN card ({exc})") from None


class History:
    """Per-stream rolling windows of metrics and gaps, most recent first, zero-padded."""

    def __init__(self, spec: DQNSpec, streams: int) -> None:
        self.spec = spec
        self.window = np.zeros((streams, spec.inputs), dtype=np.float32)

    def push_metrics(self, metrics: np.ndarray) -> None:
        k = self.spec.metrics
        self.window[:, 1:k] = self.window[:, : k - 1]
        self.window[:, 0] = metrics

    def push_gaps(self, gaps: np.ndarray) -> None:
        """The gap after the image just decided on: the next image will see it first."""
        k, g = self.spec.metrics, self.spec.gaps
        if g:
            self.window[:, k + 1 : k + g] = self.window[:, k : k + g - 1]
            self.window[:, k] = gaps


QFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class DQNPolicy:
    """The `Policy` protocol over any Q function (numpy MLP or onnxruntime session)."""

    spec: DQNSpec
    q: QFunction
    name: str = "dqn"
    uses_bucket: bool = True

    def __post_init__(self) -> None:
        self.params = self.spec.params
        self.history = History(self.spec, 1)

    def reset(self, streams: int) -> None:
        self.history = History(self.spec, streams)

    def wants(self, metrics: np.ndarray, levels: np.ndarray) -> np.ndarray:
        self.history.push_metrics(metrics)
        decisions = send_decisions(self.q(self.history.window), self.params)
        idx = np.clip(np.asarray(levels) - self.params.p, 0, decisions.shape[1] - 1)
        return decisions[np.arange(len(decisions)), idx]

    def observe(self, gaps: np.ndarray) -> None:
        self.history.push_gaps(gaps)


@dataclass(frozen=True)
class NumpyMLP:
    """Dense layers with LeakyReLU(0.2) between them, in float32 numpy."""

    weights: tuple[np.ndarray, ...]  # (in, out) each
    biases: tuple[np.ndarray, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = np.where(h > 0, h, LEAKY_SLOPE * h)
        return h

    @classmethod
    def from_torch(cls, model: Any) -> NumpyMLP:
        """From a torch Sequential of Linear layers (duck-typed: no torch import here)."""
        linear = [m for m in model if hasattr(m, "weight") and hasattr(m, "bias")]
        return cls(
            tuple(m.weight.detach().numpy().T.copy() for m in linear),
            tuple(m.bias.detach().numpy().copy() for m in linear),
        )

    @classmethod
    def from_onnx(cls, path: str | Path) -> NumpyMLP:
        """Read the Gemm (or MatMul + Add) weights of an exported MLP, in graph order.
        Needs the `onnx` package (the `train` extra)."""
        import onnx  # imported here: the runtime does not need it (see load_dqn)
        from onnx import numpy_helper

        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises several unrelated types for a bad file
            raise PolicyFileError(f"DQN model {path}: cannot read it as ONNX ({exc})") from None
        init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        weights, biases = [], []
        for node in model.graph.node:
            if node.op_type == "Gemm":
                w = init[node.input[1]]
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                weights.append(w.T if trans_b else w)
                biases.append(init[node.input[2]])
            elif node.op_type == "MatMul":
                weights.append(init[node.input[1]])
            elif node.op_type == "LeakyRelu":
                alpha = next((a.f for a in node.attribute if a.name == "alpha"), 0.01)
                if abs(alpha - LEAKY_SLOPE) > 1e-6:
                    raise PolicyFileError(
                        f"DQN model {path}: LeakyRelu slope {alpha:g}, expected {LEAKY_SLOPE}"
                    )
            elif node.op_type == "Add" and len(biases) < len(weights):
                biases.append(init[node.input[1]] if node.input[1] in init else init[node.input[0]])
        if not weights or len(weights) != len(biases):
            raise PolicyFileError(f"DQN model {path}: not a plain MLP (no dense layers found)")
        return cls(
            tuple(np.ascontiguousarray(w, dtype=np.float32) for w in weights),
            tuple(np.asarray(b, dtype=np.float32) for b in biases),
        )


def read_card(path: str | Path) -> tuple[DQNSpec, Path]:
    """The spec and the ONNX file a `dqn_*.json` card names (relative to the card)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyFileError(f"DQN card {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(data, dict) or "spec" not in data or "file" not in data:
        raise PolicyFileError(f"DQN card {path}: expected fields 'spec' and 'file'")
    spec = DQNSpec.from_json(data["spec"], f"DQN card {path}")
    model = path.parent / str(data["file"])
    if not model.is_file():
        raise PolicyFileError(f"DQN card {path}: model file {model} not found")
    return spec, model


def write_card(path: Path, spec: DQNSpec, model_file: str, extra: dict[str, Any]) -> None:
    card = {"spec": spec.to_json(), "file": model_file, **extra}
    path.write_text(json.dumps(card, indent=2) + "\n")


def load_dqn(card: str | Path, backend: str = "numpy", threads: int = 1) -> DQNPolicy:
    """A DQN policy from a card; backend 'numpy' or 'onnxruntime'. The numpy backend reads
    the weights with the `onnx` package (the `train` extra); where it is not installed the
    same network runs in onnxruntime, which the runtime has."""
    spec, model = read_card(card)
    if backend == "numpy" and importlib.util.find_spec("onnx") is None:
        backend = "onnxruntime"
    if backend == "numpy":
        mlp = NumpyMLP.from_onnx(model)
        if mlp.weights[0].shape[0] != spec.inputs or mlp.biases[-1].shape[0] != spec.outputs:
            raise PolicyFileError(
                f"DQN model {model}: shape {mlp.weights[0].shape[0]} -> "
                f"{mlp.biases[-1].shape[0]} does not match its card ({spec.inputs} -> "
                f"{spec.outputs})"
            )
        return DQNPolicy(spec, mlp)
    if backend == "onnxruntime":
        # The runtime adapter lives with the codecs; imported here so numpy use needs none.
        from edgebus.codecs.errors import ModelFileError
        from edgebus.codecs.inference import InferenceSession

        try:
            session = InferenceSession(model, threads)
        except ModelFileError as exc:
            raise PolicyFileError(str(exc)) from None
        return DQNPolicy(spec, session.run)
    raise PolicyFileError(f"DQN backend must be 'numpy' or 'onnxruntime', got {backend!r}")
