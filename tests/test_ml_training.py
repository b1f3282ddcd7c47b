"""Training smoke runs: tiny models for a few steps, ONNX export parity, teacher rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgebus.codecs.classifier import Classifier
from edgebus.ml.errors import TrainingError
from edgebus.ml.export import export_onnx
from edgebus.ml.models import AEConfig, AutoEncoder, StrongClassifier, WeakClassifier
from edgebus.ml.teacher import load_teacher
from edgebus.ml.train_classifiers import ClassifierRecipe, DataRecipe, train_and_export_classifiers
from edgebus.ml.train_pnc import AERecipe, run_recipe, taildrop_masks, train_and_export
from edgebus.ml.training import to_tensor


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clf")
    recipes = (ClassifierRecipe("strong", 1, 3e-3, 32, 4), ClassifierRecipe("weak", 1, 3e-3, 32, 2))
    train_and_export_classifiers(
        out, DataRecipe(seed=1, image_size=32, train=64, val=16, test=16), recipes, False
    )
    return out


def test_classifier_export_and_card(classifier_dir: Path) -> None:
    for kind in ("strong", "weak"):
        card = json.loads((classifier_dir / f"{kind}_classifier.json").read_text())
        assert card["onnx_max_abs_diff"] <= 1e-4
        assert 0.0 <= card["test_top1"] <= card["test_top5"] <= 1.0
        assert card["split"]["kind"] == "procedural" and card["split"]["train"] == 64
        clf = Classifier(kind, root=classifier_dir)
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        pred = clf.topk(image, k=3)
        assert len(pred.labels) == 3 and 0 < sum(pred.probabilities) <= 1 + 1e-6
        assert pred.probabilities == sorted(pred.probabilities, reverse=True)


def test_teacher_rebuilt_from_onnx_matches(classifier_dir: Path) -> None:
    teacher = load_teacher(classifier_dir / "strong_classifier.json", 32)
    x = torch.rand(3, 3, 32, 32)
    sess = ort.InferenceSession(str(classifier_dir / "strong_classifier.onnx"))
    expected = sess.run(None, {"image": x.numpy()})[0]
    assert np.abs(teacher(x).detach().numpy() - expected).max() < 1e-4
    with pytest.raises(TrainingError, match="32 px"):
        load_teacher(classifier_dir / "strong_classifier.json", 64)
    with pytest.raises(TrainingError, match="train classifiers"):
        load_teacher(classifier_dir / "missing.json", 32)


@pytest.mark.parametrize("cls", [StrongClassifier, WeakClassifier])
def test_classifier_onnx_parity(tmp_path: Path, cls: type[torch.nn.Module]) -> None:
    model = cls(10)
    gap = export_onnx(model, torch.rand(2, 3, 64, 64), tmp_path / "m.onnx", "image", "logits")
    assert gap <= 1e-4


def test_taildrop_masks_are_prefixes_covering_every_tail() -> None:
    masks = taildrop_masks(2000, 10, torch.Generator().manual_seed(0))
    kept = masks.sum(1)
    assert masks.shape == (2000, 10)
    assert torch.equal(masks, (torch.arange(10)[None] < kept[:, None]).float())
    assert set(kept.int().tolist()) == set(range(1, 11))


@pytest.mark.parametrize("stride", [4, 8])
def test_autoencoder_shapes(stride: int) -> None:
    ae = AutoEncoder(AEConfig(image_size=64, channels=6, stride=stride))
    z = ae.encoder(torch.rand(2, 3, 64, 64))
    assert z.shape == (2, 6, 64 // stride, 64 // stride) and z.min() >= 0 and z.max() <= 1
    assert ae.decoder(z).shape == (2, 3, 64, 64)
    with pytest.raises(TrainingError, match="stride"):
        AEConfig(image_size=64, stride=5)


@pytest.mark.parametrize("taildrop", [True, False])
def test_autoencoder_smoke_train_and_export(
    tmp_path: Path, classifier_dir: Path, taildrop: bool
) -> None:
    from edgebus.ml.datasets import procedural_split

    split, train, _, test = procedural_split(seed=1, image_size=32, train=32, val=0, test=8)
    recipe = AERecipe(
        "smoke", AEConfig(image_size=32, channels=3, stride=4, hidden=8, decoder_width=12),
        taildrop=taildrop, batch_size=4, recon_steps=2, kd_steps=2,
    )  # fmt: skip
    teacher = load_teacher(classifier_dir / "strong_classifier.json", 32)
    card = run_recipe(
        recipe, tmp_path, split, train, test, teacher, classifier_dir / "strong_classifier.json",
        show_progress=False,
    )  # fmt: skip
    assert card["kind"] == ("pnc" if taildrop else "fixed-rate")
    assert max(card["onnx_max_abs_diff"].values()) <= 1e-4
    assert len(card["test"]["top1_by_features"]) == 3
    for name in card["files"].values():
        assert (tmp_path / name).is_file()
    int8 = ort.InferenceSession(str(tmp_path / card["files"]["encoder_int8"]))
    out = int8.run(None, {"image": to_tensor(test.images[:2]).numpy()})[0]
    assert out.shape == (2, 3, 8, 8)


def test_unknown_family_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="pnc or fixed-rate"):
        train_and_export("vae", tmp_path, tmp_path)


def test_fashion_pnc_trains_at_28_px_from_its_own_teacher(
    tmp_path: Path, fashion_mnist_dir: Path
) -> None:
    from edgebus.codecs.assets import assets_dir

    (card,) = train_and_export(
        "pnc", tmp_path, assets_dir(), image_size=28, scale=0.001, train_images=64,
        threads=1, show_progress=False, data="fashion-mnist",
    )  # fmt: skip
    assert card["name"] == "fashion_pnc28" and card["feature_shape"] == [10, 7, 7]
    assert card["distilled_from"] == "fashion_strong_classifier.json"
    assert card["split"]["kind"] == "fashion-mnist" and card["split"]["test"] == 10_000
    with pytest.raises(TrainingError, match="28 px"):
        train_and_export("pnc", tmp_path, assets_dir(), image_size=64, data="fashion-mnist")
