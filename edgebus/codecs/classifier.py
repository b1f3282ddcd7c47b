"""The shipped strong (edge) and weak (camera) classifiers at run time: images in, top-k out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebus.codecs.assets import asset_path, assets_dir, read_card
from edgebus.codecs.errors import ImageShapeError, ModelFileError
from edgebus.codecs.inference import DEFAULT_THREADS, InferenceSession


@dataclass(frozen=True)
class Prediction:
    labels: list[int]
    names: list[str]
    probabilities: list[float]


def card_name(model: str) -> str:
    """A classifier's card: "strong" is strong_classifier.json; a .json path is itself."""
    return model if model.endswith(".json") else f"{model}_classifier.json"


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """`Classifier("strong")` / `Classifier("weak")` load the shipped models; a card path
    loads any other model trained by `edgebus train classifiers`."""

    def __init__(
        self, model: str = "strong", root: str | Path | None = None, threads: int = DEFAULT_THREADS
    ) -> None:
        base = Path(root) if root is not None else assets_dir()
        card = card_name(model)
        self.card: dict[str, Any] = read_card(card, base)
        try:
            self.class_names: list[str] = list(self.card["classes"])
            self.image_size = int(self.card["input"]["size"])
            model_file = self.card["file"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"classifier card {card}: missing field {exc}") from None
        try:
            model_path = asset_path(model_file, asset_path(card, base).parent)
        except ModelFileError:
            build = self.card.get("build")
            if not build:
                raise
            # Too large to ship: built from an installed package by the set-up.
            raise ModelFileError(
                f"classifier {model}: {model_file} is built at set-up, not shipped; run "
                f"`{build}` (make setup does)"
            ) from None
        self.session = InferenceSession(model_path, threads)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """images: (N, H, W, 3) or (H, W, 3) uint8 -> logits (N, classes)."""
        batch = images[None] if images.ndim == 3 else images
        size = self.image_size
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3) or batch.dtype != np.uint8:
            raise ImageShapeError(
                f"classifier input: expected uint8 images of {size}x{size}x3, got "
                f"{images.shape} {images.dtype}"
            )
        x = batch.transpose(0, 3, 1, 2).astype(np.float32) * (1 / 255)
        return self.session.run(x)

    def topk(self, image: np.ndarray, k: int = 5) -> Prediction:
        probs = softmax(self.logits(image)[0])
        order = np.argsort(-probs)[:k].tolist()
        return Prediction(
            order, [self.class_names[i] for i in order], [float(probs[i]) for i in order]
        )
