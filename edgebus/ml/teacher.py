"""Rebuild a frozen classifier in torch from its shipped ONNX file, for distillation.

The export folds batch-norm into the convolutions, so the torch model is rebuilt with biased
convolutions and no batch-norm, and the ONNX weights are assigned in graph order.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgebus.ml.errors import TrainingError
from edgebus.ml.models import StrongClassifier


def _fold(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        elif isinstance(child, nn.Conv2d) and child.bias is None:
            setattr(
                module,
                name,
                nn.Conv2d(
                    child.in_channels, child.out_channels,
                    child.kernel_size,  # type: ignore[arg-type]  # torch types it as tuple[int, ...]
                    stride=child.stride,  # type: ignore[arg-type]
                    padding=child.padding,  # type: ignore[arg-type]
                    bias=True,
                ),
            )  # fmt: skip
        else:
            _fold(child)


def load_teacher(card_path: Path, image_size: int) -> nn.Module:
    if not card_path.is_file():
        raise TrainingError(
            f"classifier card {card_path}: not found; run `edgebus train classifiers` first"
        )
    card = json.loads(card_path.read_text())
    if int(card["input"]["size"]) != image_size:
        raise TrainingError(
            f"classifier {card_path}: trained at {card['input']['size']} px, "
            f"the autoencoder is {image_size} px"
        )
    graph = onnx.load(str(card_path.parent / card["file"])).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    if not convs or len(gemms) != 1:
        raise TrainingError(f"classifier {card_path}: not a StrongClassifier-layout ONNX graph")
    width = int(weights[convs[0].input[1]].shape[0])
    model = StrongClassifier(len(card["classes"]), width)
    _fold(model)
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if len(layers) != len(convs):
        raise TrainingError(
            f"classifier {card_path}: {len(convs)} convolutions, expected {len(layers)}"
        )
    with torch.no_grad():
        for layer, node in zip(layers, convs, strict=True):
            layer.weight.copy_(torch.from_numpy(weights[node.input[1]].copy()))
            assert layer.bias is not None  # replaced above by convolutions with a bias
            layer.bias.copy_(torch.from_numpy(weights[node.input[2]].copy()))
        head = model.head[-1]
        assert isinstance(head, nn.Linear)
        w = weights[gemms[0].input[1]]
        transposed = any(a.name == "transB" and a.i == 1 for a in gemms[0].attribute)
        head.weight.copy_(torch.from_numpy((w if transposed else w.T).copy()))
        head.bias.copy_(torch.from_numpy(weights[gemms[0].input[2]].copy()))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
