"""Train the strong (edge) and weak (camera) classifiers and ship them as ONNX + JSON cards."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from edgebus.ml.datasets import (
    FASHION_MNIST_DIR,
    DatasetSplit,
    ImageSet,
    fashion_split,
    procedural_split,
)
from edgebus.ml.errors import TrainingError
from edgebus.ml.export import export_onnx
from edgebus.ml.models import CLASSIFIERS
from edgebus.ml.training import (
    augment,
    batches,
    predict_logits,
    progress_bar,
    seed_everything,
    to_tensor,
    topk_accuracy,
    write_card,
)


@dataclass(frozen=True)
class ClassifierRecipe:
    kind: str
    epochs: int
    lr: float
    batch_size: int = 64
    width: int | None = None


@dataclass(frozen=True)
class DataRecipe:
    """The procedural split every shipped asset is trained and measured on."""

    seed: int = 0
    image_size: int = 64
    train: int = 12000
    val: int = 1000
    test: int = 2000

    def load(self) -> tuple[DatasetSplit, ImageSet, ImageSet, ImageSet]:
        return procedural_split(self.seed, self.image_size, self.train, self.val, self.test)


@dataclass(frozen=True)
class FashionData:
    """Fashion-MNIST from Debian's dataset-fashion-mnist: the real-data classifiers."""

    seed: int = 0
    image_size: int = 28
    root: Path = FASHION_MNIST_DIR

    def load(self) -> tuple[DatasetSplit, ImageSet, ImageSet, ImageSet]:
        return fashion_split(self.root, self.seed)


DEFAULT_RECIPES = (
    ClassifierRecipe("strong", epochs=14, lr=3e-3),
    ClassifierRecipe("weak", epochs=14, lr=3e-3),
)
# Fashion-MNIST at 28 px: the strong model at its full width, the weak one at an eighth
# of it, under a fiftieth of the multiply-adds (the camera's cheap model). At a quarter
# width the weak one came within 3.5 points of the strong (88.1 % vs 91.7 % top-1): too
# close for an offload to buy much; at an eighth it lands 6.8 points below (84.8 %).
FASHION_RECIPES = (
    ClassifierRecipe("strong", epochs=10, lr=3e-3, batch_size=128),
    ClassifierRecipe("weak", epochs=10, lr=3e-3, batch_size=128, width=4),
)


def multiply_adds(model: torch.nn.Module, image_size: int) -> int:
    """Multiply-accumulates of one forward pass on one image (convolutions and linear
    layers, which are nearly all of it): the compute the weak and strong models compare by."""
    total = 0

    def count(layer: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, torch.nn.Conv2d):
            per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
            total += output.numel() * per_output
        elif isinstance(layer, torch.nn.Linear):
            total += layer.in_features * layer.out_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return total


def build_classifier(kind: str, num_classes: int, width: int | None = None) -> torch.nn.Module:
    if kind not in CLASSIFIERS:
        raise TrainingError(f"classifier kind {kind!r}: expected one of {sorted(CLASSIFIERS)}")
    cls = CLASSIFIERS[kind]
    return cls(num_classes) if width is None else cls(num_classes, width)


def train_classifier(
    recipe: ClassifierRecipe,
    train: ImageSet,
    val: ImageSet,
    seed: int,
    show_progress: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Adam with a one-cycle schedule; the epoch with the best validation top-1 is kept."""
    gen = seed_everything(seed)
    model = build_classifier(recipe.kind, len(train.class_names), recipe.width)
    x_all, y_all = to_tensor(train.images), torch.from_numpy(train.labels)
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=max(1, recipe.epochs * steps_per_epoch)
    )
    best: tuple[float, dict[str, torch.Tensor]] = (-1.0, {})
    history = []
    with progress_bar(show_progress) as bar:
        task = bar.add_task(f"train {recipe.kind}", total=recipe.epochs * steps_per_epoch, info="")
        for epoch in range(recipe.epochs):
            model.train()
            for idx in batches(len(train), recipe.batch_size, gen):
                loss = F.cross_entropy(model(augment(x_all[idx], gen)), y_all[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(task, advance=1)
            val_top1 = topk_accuracy(predict_logits(model, val.images), val.labels, 1)
            history.append({"epoch": epoch + 1, "loss": loss.item(), "val_top1": val_top1})
            bar.update(task, info=f"val top-1 {val_top1:.3f}")
            if val_top1 > best[0]:
                best = (val_top1, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    model.eval()
    return model, {"history": history, "best_val_top1": best[0]}


def train_and_export_classifiers(
    out_dir: Path,
    data: DataRecipe | FashionData = DataRecipe(),
    recipes: tuple[ClassifierRecipe, ...] = DEFAULT_RECIPES,
    show_progress: bool = True,
    prefix: str = "",
) -> dict[str, dict[str, Any]]:
    """Train each recipe on the recorded split, export `<prefix><kind>_classifier.onnx` and
    write its card with the measured test accuracy and compute."""
    out_dir.mkdir(parents=True, exist_ok=True)
    split, train, val, test = data.load()
    cards = {}
    for recipe in recipes:
        start = time.perf_counter()
        model, info = train_classifier(recipe, train, val, data.seed, show_progress)
        seconds = time.perf_counter() - start
        logits = predict_logits(model, test.images)
        name = f"{prefix}{recipe.kind}_classifier"
        path = out_dir / f"{name}.onnx"
        example = to_tensor(test.images[:4])
        gap = export_onnx(model, example, path, "image", "logits")
        card = {
            "name": name,
            "file": path.name,
            "task": "classification",
            "architecture": type(model).__name__,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "multiply_adds": multiply_adds(model, data.image_size),
            "input": {"name": "image", "layout": "NCHW", "range": [0.0, 1.0],
                      "size": data.image_size},
            "output": {"name": "logits"},
            "classes": train.class_names,
            "test_top1": topk_accuracy(logits, test.labels, 1),
            "test_top5": topk_accuracy(logits, test.labels, 5),
            "test_images": len(test),
            "onnx_max_abs_diff": gap,
            "recipe": {"epochs": recipe.epochs, "lr": recipe.lr, "batch_size": recipe.batch_size,
                       "width": recipe.width, "optimizer": "adam+onecycle", "augment": "flips"},
            "train_seconds": round(seconds, 1),
            "split": split.to_json(),
            **info,
        }  # fmt: skip
        write_card(out_dir / f"{name}.json", card)
        cards[recipe.kind] = card
    return cards
