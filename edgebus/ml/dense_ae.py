"""Dense autoencoders of the QoS orchestrator and their training modes (Amaizu et al.).

The paper's stacked AE is D-1000-500-250-d-250-500-1000-D; `hidden` makes the widths
configurable and defaults to (128, 64) so a model trains in about a second on one CPU core.

Modes:

- ``eco``: encoder -> decoder and encoder -> classifier head on the latent; MSE and CE are
  minimised together. At run time the decoder is dropped: the cloud classifies the latent.
- ``eccd``: encoder -> decoder -> classifier on the reconstruction, MSE and CE together; the
  cloud decodes, then classifies.
- ``ae``: unsupervised AE (MSE only), scored with the cloud-only classifier (baseline).
- ``pca``: the first d principal components, scored with the cloud-only classifier.
- ``co``: the cloud-only classifier on raw data, the reference all the others are scored
  against.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgebus.ml.errors import TrainingError
from edgebus.ml.export import export_onnx
from edgebus.ml.qos_data import FlatSet
from edgebus.ml.training import batches

MODES = ("eco", "eccd", "ae", "pca")


def _mlp(sizes: Sequence[int], last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Recipe:
    """Widths and training schedule shared by every model of one pool."""

    hidden: tuple[int, ...] = (128, 64)
    head_hidden: int = 64
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    ce_weight: float = 0.1  # CE is ~20x the image MSE; this keeps both terms in play
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise TrainingError(f"hidden widths: expected positive integers, got {self.hidden}")
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError(
                f"epochs and batch size: expected >= 1, got {self.epochs} and {self.batch_size}"
            )


class DenseCodec(nn.Module):
    """Encoder, decoder and the classifier its mode uses."""

    def __init__(self, dim: int, latent: int, classes: int, mode: str, recipe: Recipe) -> None:
        super().__init__()
        if mode not in ("eco", "eccd", "ae"):
            raise TrainingError(f"dense AE mode {mode!r}: expected eco, eccd or ae")
        self.mode = mode
        self.encoder = _mlp([dim, *recipe.hidden, latent])
        self.decoder = _mlp([latent, *reversed(recipe.hidden), dim])
        self.head: nn.Module | None = None
        if mode == "eco":
            self.head = _mlp([latent, recipe.head_hidden, classes])
        elif mode == "eccd":
            self.head = cloud_classifier(dim, classes, recipe)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        if self.head is None:
            return x_hat, None
        return x_hat, self.head(z if self.mode == "eco" else x_hat)


def cloud_classifier(dim: int, classes: int, recipe: Recipe) -> nn.Sequential:
    return _mlp([dim, recipe.hidden[0], recipe.head_hidden, classes])


@dataclass
class Scores:
    """Test-set QoS of one model: accuracy (its configuration's path), PSNR of the decoder."""

    accuracy: float
    psnr_db: float
    mse: float
    train_seconds: float


@dataclass
class TrainedModel:
    mode: str
    latent: int
    scores: Scores
    codec: DenseCodec | None = None  # None for PCA
    pca: PcaCodec | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _psnr(mse: float, peak: float) -> float:
    return 10 * math.log10(peak**2 / max(mse, 1e-12))


def _tensor(data: FlatSet) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.x), torch.from_numpy(data.y)


def _fit(
    model: nn.Module,
    train: FlatSet,
    recipe: Recipe,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    generator: torch.Generator,
) -> None:
    x, y = _tensor(train)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    model.train()
    for _ in range(recipe.epochs):
        for index in batches(len(train), recipe.batch_size, generator):
            optimiser.zero_grad()
            loss = loss_of(x[index], y[index])
            loss.backward()
            optimiser.step()
    model.eval()


def peak_of(data: FlatSet) -> float:
    """The signal peak used for PSNR: 1 for images in [0, 1], the data's range otherwise."""
    return float(data.x.max() - data.x.min()) if data.kind == "accelerometer" else 1.0


def train_cloud_classifier(
    train: FlatSet, test: FlatSet, recipe: Recipe
) -> tuple[nn.Module, float]:
    """CO: the cloud's classifier on raw data; returns it with its test accuracy."""
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    classes = len(train.class_names)
    model = cloud_classifier(train.dim, classes, recipe)
    ce = nn.CrossEntropyLoss()
    _fit(model, train, recipe, lambda xb, yb: ce(model(xb), yb), generator)
    return model, classify(model, test.x, test.y)


@torch.no_grad()
def classify(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return float((logits.argmax(1).numpy() == y).mean())


def train_dense(
    mode: str,
    latent: int,
    train: FlatSet,
    test: FlatSet,
    recipe: Recipe,
    cloud: nn.Module | None = None,
) -> TrainedModel:
    """Train one model of the pool and score it on `test`. `cloud` (the CO classifier) is
    needed to score the unsupervised AE and PCA baselines."""
    if not 1 <= latent <= train.dim:
        raise TrainingError(f"latent size: expected 1..{train.dim}, got {latent}")
    start = time.perf_counter()
    if mode == "pca":
        pca = PcaCodec.fit(train.x, latent)
        recon = pca.decode(pca.encode(test.x))
        scores = _scores(test, recon, _need(cloud, mode), start, recon)
        return TrainedModel(mode, latent, scores, pca=pca)
    # Common random numbers: every d starts from the same seed, so the layers before the
    # latent start identical and see the same batches; neighbouring d then differ by d, not
    # by seed luck, which keeps QoS(d) close to the monotone curve Algorithm 1 assumes.
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    model = DenseCodec(train.dim, latent, len(train.class_names), mode, recipe)
    mse, ce = nn.MSELoss(), nn.CrossEntropyLoss()

    def loss_of(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        x_hat, logits = model(xb)
        loss = mse(x_hat, xb)
        return loss if logits is None else loss + recipe.ce_weight * ce(logits, yb)

    _fit(model, train, recipe, loss_of, generator)
    with torch.no_grad():
        x_hat, logits = model(torch.from_numpy(test.x))
    recon = x_hat.numpy()
    if logits is not None:
        predicted = logits.argmax(1).numpy()
        scores = _scores(test, recon, None, start, predicted=predicted)
    else:
        scores = _scores(test, recon, _need(cloud, mode), start, recon)
    return TrainedModel(mode, latent, scores, codec=model)


def _need(cloud: nn.Module | None, mode: str) -> nn.Module:
    if cloud is None:
        raise TrainingError(f"mode {mode}: the cloud-only classifier is needed to score it")
    return cloud


def _scores(
    test: FlatSet,
    recon: np.ndarray,
    cloud: nn.Module | None,
    start: float,
    classify_input: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
) -> Scores:
    if predicted is None:
        assert cloud is not None and classify_input is not None
        accuracy = classify(cloud, classify_input, test.y)
    else:
        accuracy = float((predicted == test.y).mean())
    mse = float(np.mean((recon - test.x) ** 2))
    return Scores(accuracy, _psnr(mse, peak_of(test)), mse, time.perf_counter() - start)


@dataclass
class PcaCodec:
    """PCA baseline: z = (x - mean) V_d^T, x_hat = z V_d + mean."""

    mean: np.ndarray
    components: np.ndarray  # (d, D)

    @classmethod
    def fit(cls, x: np.ndarray, latent: int) -> PcaCodec:
        mean, basis = _pca_basis(x)
        return cls(mean, basis[:latent])

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T

    def decode(self, z: np.ndarray) -> np.ndarray:
        return z @ self.components + self.mean


_basis_cache: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []


def _pca_basis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and principal axes, largest variance first; the last fit is kept (with its
    array, so identity is a safe key) because a sweep over d refits the same training set."""
    if _basis_cache and _basis_cache[0][0] is x:
        return _basis_cache[0][1], _basis_cache[0][2]
    mean = x.mean(axis=0, dtype=np.float64)
    centred = x - mean
    # The D x D covariance is far cheaper to decompose than the N x D data.
    values, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(values)[::-1]
    basis = (mean.astype(np.float32), vectors[:, order].T.astype(np.float32))
    _basis_cache[:] = [(x, *basis)]
    return basis


# --- export: the files a node receives ----------------------------------------------------


def export_bundle(model: TrainedModel, dim: int, folder: Path) -> dict[str, Path]:
    """ONNX files of a deployable model: the edge's encoder, and the cloud's latent head (ECO)
    or decoder + classifier (ECCD). Inputs are named x / z, outputs z / logits / x_hat."""
    if model.codec is None or model.mode not in ("eco", "eccd"):
        raise TrainingError(f"only eco and eccd models are deployed, not {model.mode}")
    codec = model.codec
    folder.mkdir(parents=True, exist_ok=True)
    x = torch.rand(4, dim)
    z = codec.encoder(x).detach()
    files = {"encoder.onnx": folder / "encoder.onnx"}
    export_onnx(codec.encoder, x, files["encoder.onnx"], "x", "z")
    assert codec.head is not None
    if model.mode == "eco":
        files["head.onnx"] = folder / "head.onnx"
        export_onnx(codec.head, z, files["head.onnx"], "z", "logits")
    else:
        files["decoder.onnx"] = folder / "decoder.onnx"
        files["classifier.onnx"] = folder / "classifier.onnx"
        export_onnx(codec.decoder, z, files["decoder.onnx"], "z", "x_hat")
        export_onnx(codec.head, x, files["classifier.onnx"], "x", "logits")
    return files


def export_cloud_classifier(model: nn.Module, dim: int, folder: Path) -> dict[str, Path]:
    """The CO classifier as the pool's "raw" model: classifier.onnx, input x, output logits."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "classifier.onnx"
    export_onnx(model, torch.rand(4, dim), path, "x", "logits")
    return {"classifier.onnx": path}
