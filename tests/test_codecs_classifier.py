"""The shipped classifiers and the inference adapter at run time (onnxruntime only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgebus.codecs.classifier import Classifier
from edgebus.codecs.errors import ImageShapeError, ModelFileError
from edgebus.codecs.inference import InferenceSession
from edgebus.ml.datasets import procedural_shapes


@pytest.mark.parametrize("kind", ["strong", "weak"])
def test_shipped_classifier_cards_and_predictions(kind: str) -> None:
    clf = Classifier(kind)
    card = clf.card
    assert card["split"]["kind"] == "procedural" and 0 < card["test_top1"] <= card["test_top5"]
    data = procedural_shapes(card["split"]["seed"], 13000, 40, clf.image_size)
    logits = clf.logits(data.images)
    assert logits.shape == (40, len(clf.class_names))
    accuracy = float((logits.argmax(1) == data.labels).mean())
    assert accuracy > 0.5  # far above chance (0.1) on held-out test images
    pred = clf.topk(data.images[0], k=3)
    assert len(pred.names) == 3 and pred.probabilities[0] >= pred.probabilities[-1]


def test_weak_is_clearly_weaker_than_strong() -> None:
    strong, weak = Classifier("strong").card, Classifier("weak").card
    assert 0.10 <= strong["test_top1"] - weak["test_top1"] <= 0.25


def test_classifier_rejects_wrong_shapes() -> None:
    clf = Classifier("strong")
    with pytest.raises(ImageShapeError, match="64x64x3"):
        clf.logits(np.zeros((32, 32, 3), dtype=np.uint8))
    with pytest.raises(ImageShapeError, match="uint8"):
        clf.logits(np.zeros((64, 64, 3), dtype=np.float32))


def test_missing_and_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        InferenceSession(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        InferenceSession(bad)
    with pytest.raises(ModelFileError, match="no such file"):
        Classifier("medium")


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_runtime") is not None
    or importlib.util.find_spec("ai_edge_litert") is not None,
    reason="a TFLite runtime is installed",
)
def test_tflite_without_runtime_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    with pytest.raises(ModelFileError, match="ai-edge-litert or tflite-runtime"):
        InferenceSession(model)
