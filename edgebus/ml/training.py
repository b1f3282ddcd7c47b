"""Shared training plumbing: tensors from uint8 images, batching, progress, seeding."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def seed_everything(seed: int, threads: int = 2) -> torch.Generator:
    """Fix every random source; thread count is capped because the training box is shared."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return torch.Generator().manual_seed(seed)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) to float32 NCHW in [0, 1], the layout every model takes."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


def batches(
    n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips; every shape class is closed under them."""
    flip_h = torch.rand(x.shape[0], generator=generator) < 0.5
    flip_v = torch.rand(x.shape[0], generator=generator) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    return torch.where(flip_v[:, None, None, None], x.flip(2), x)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    out = [model(to_tensor(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


@contextmanager
def progress_bar(show: bool = True) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not show,
    )
    with progress:
        yield progress


def write_card(path: Path, card: dict[str, Any]) -> None:
    path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
