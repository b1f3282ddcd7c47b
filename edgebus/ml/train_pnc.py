"""Train PNC (stochastic taildrop) and the fixed-rate autoencoders, then ship them.

Stage 1 fits the reconstruction (MSE), stage 2 distils the frozen classifier (paper Eq. 7).
With taildrop, every update averages the loss over M draws of the tail length
L ~ Uniform(0, M-1) (paper Algorithm 1); the draws are stacked into one decoder batch, whose
mean loss has exactly the averaged gradient. Fixed-rate models skip the taildrop.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch.nn import functional as F

from edgebus.codecs.huffman import HuffmanTables
from edgebus.codecs.pnc_wire import OVERHEAD
from edgebus.fashion_mnist import fashion_mnist_dir
from edgebus.ml.datasets import DatasetSplit, ImageSet
from edgebus.ml.errors import TrainingError
from edgebus.ml.export import export_onnx, quantise_int8
from edgebus.ml.models import AEConfig, AutoEncoder, quantise_features
from edgebus.ml.training import (
    augment,
    progress_bar,
    seed_everything,
    to_tensor,
    topk_accuracy,
    write_card,
)

LEVELS = 64  # 6-bit features: 64 levels over 0..255


@dataclass(frozen=True)
class AERecipe:
    """How one autoencoder is trained. `taildrop=False` gives a fixed-rate comparator."""

    name: str
    config: AEConfig
    taildrop: bool = True
    batch_size: int = 8
    recon_steps: int = 800
    kd_steps: int = 800
    recon_lr: float = 1e-3
    kd_lr: float = 1e-3
    seed: int = 0
    threads: int = 2


def taildrop_masks(draws: int, channels: int, generator: torch.Generator) -> torch.Tensor:
    """(draws, channels) keep-masks: each draw zeroes a tail of L ~ U{0..M-1} channels."""
    tails = torch.randint(0, channels, (draws,), generator=generator)
    keep = channels - tails
    return (torch.arange(channels)[None, :] < keep[:, None]).float()


def _decode_draws(
    model: AutoEncoder, x: torch.Tensor, recipe: AERecipe, gen: torch.Generator
) -> tuple[torch.Tensor, int]:
    """Reconstructions for every taildrop draw, stacked draw-major; returns (recon, draws)."""
    z = quantise_features(model.encoder(x), LEVELS)
    if not recipe.taildrop:
        return model.decoder(z), 1
    m = recipe.config.channels
    masks = taildrop_masks(m, m, gen)
    zs = (z[None] * masks[:, None, :, None, None]).flatten(0, 1)
    return model.decoder(zs), m


def train_autoencoder(
    recipe: AERecipe,
    train: ImageSet,
    teacher: torch.nn.Module | None,
    show_progress: bool = True,
) -> tuple[AutoEncoder, dict[str, Any]]:
    gen = seed_everything(recipe.seed, recipe.threads)
    model = AutoEncoder(recipe.config)
    x_all = to_tensor(train.images)
    n = len(train)
    if teacher is not None:
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    stages = [("recon", recipe.recon_steps, recipe.recon_lr)]
    if teacher is not None and recipe.kd_steps:
        stages.append(("kd", recipe.kd_steps, recipe.kd_lr))
    history: dict[str, list[float]] = {}
    with progress_bar(show_progress) as bar:
        for stage, steps, lr in stages:
            task = bar.add_task(f"{recipe.name} {stage}", total=steps, info="")
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
            losses: list[float] = []
            model.train()
            for step in range(steps):
                idx = torch.randint(0, n, (recipe.batch_size,), generator=gen)
                x = augment(x_all[idx], gen)
                recon, draws = _decode_draws(model, x, recipe, gen)
                target = x.repeat(draws, 1, 1, 1)
                if stage == "recon":
                    loss = F.mse_loss(recon, target)
                else:
                    assert teacher is not None
                    with torch.no_grad():
                        soft = F.softmax(teacher(x), dim=1).repeat(draws, 1)
                    loss = F.cross_entropy(teacher(recon), soft)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                if step % 20 == 0:
                    bar.update(task, info=f"loss {np.mean(losses[-50:]):.4f}")
                bar.update(task, advance=1)
            history[stage] = [float(np.mean(losses[i : i + 50])) for i in range(0, steps, 50)]
    model.eval()
    return model, {"loss_history": history}


class _EncoderOut(torch.nn.Module):
    """The exported encoder: the clipped features the runtime quantises to 6 bits."""

    def __init__(self, model: AutoEncoder) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def _run_encoder(path: Path, images: np.ndarray, batch: int = 64) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [
        sess.run(None, {name: to_tensor(images[i : i + batch]).numpy()})[0]
        for i in range(0, len(images), batch)
    ]
    z = np.concatenate(outs)
    return np.rint(np.clip(z, 0, 1) * (LEVELS - 1)).astype(np.int64)


def symbol_counts(symbols: np.ndarray) -> np.ndarray:
    """(N, M, h, w) symbols -> (M, LEVELS) histogram, one per feature channel."""
    m = symbols.shape[1]
    per_channel = symbols.transpose(1, 0, 2, 3).reshape(m, -1)
    return np.stack([np.bincount(row, minlength=LEVELS) for row in per_channel])


def export_autoencoder(
    model: AutoEncoder,
    recipe: AERecipe,
    out_dir: Path,
    train: ImageSet,
    split: DatasetSplit,
    extra: dict[str, Any],
    calibration_images: int = 512,
    table_images: int = 2000,
) -> dict[str, Any]:
    """Write encoder (fp32 + int8), decoder, Huffman tables and the card; return the card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = recipe.config
    name = recipe.name
    example = to_tensor(train.images[:4])
    enc_path, dec_path = out_dir / f"{name}_encoder.onnx", out_dir / f"{name}_decoder.onnx"
    int8_path = out_dir / f"{name}_encoder.int8.onnx"
    enc_gap = export_onnx(_EncoderOut(model), example, enc_path, "image", "features")
    with torch.no_grad():
        z_example = model.encoder(example)
    dec_gap = export_onnx(model.decoder, z_example, dec_path, "features", "image")
    quantise_int8(
        enc_path, int8_path, "image", to_tensor(train.images[:calibration_images]).numpy()
    )
    # Tables are built from what the shipped (int8) encoder emits on the training set.
    symbols = _run_encoder(int8_path, train.images[:table_images])
    counts = symbol_counts(symbols)
    tables = HuffmanTables.from_counts(counts)
    tables_path = out_dir / f"{name}_huffman.npz"
    tables.save(tables_path)
    digest = hashlib.sha256(enc_path.read_bytes() + dec_path.read_bytes()).digest()
    side = cfg.feature_size
    mean_payload = [
        tables[k].expected_bits(counts[k]) / counts[k].sum() * side * side / 8
        for k in range(len(tables))
    ]
    card = {
        "name": name,
        "kind": "pnc" if recipe.taildrop else "fixed-rate",
        "config": cfg.to_json(),
        "levels": LEVELS,
        "model_tag": int.from_bytes(digest[:2], "big"),
        "files": {
            "encoder": enc_path.name,
            "encoder_int8": int8_path.name,
            "decoder": dec_path.name,
            "huffman": tables_path.name,
        },
        "feature_shape": [cfg.channels, side, side],
        "raw_feature_bytes_6bit": side * side * 6 // 8,
        "mean_unit_bytes_train": [round(float(b) + OVERHEAD, 1) for b in mean_payload],
        "onnx_max_abs_diff": {"encoder": enc_gap, "decoder": dec_gap},
        "recipe": {
            "taildrop": recipe.taildrop,
            "batch_size": recipe.batch_size,
            "taildrop_draws_per_update": cfg.channels if recipe.taildrop else 1,
            "recon_steps": recipe.recon_steps,
            "kd_steps": recipe.kd_steps,
            "recon_lr": recipe.recon_lr,
            "kd_lr": recipe.kd_lr,
            "optimizer": "adam+cosine",
            "seed": recipe.seed,
        },
        "split": split.to_json(),
        **extra,
    }
    write_card(out_dir / f"{name}.json", card)
    return card


def evaluate_prefixes(
    codec_dir: Path, name: str, classifier: Path, test: ImageSet, limit: int = 1000
) -> dict[str, list[float] | int]:
    """Runtime accuracy (int8 encoder, 6-bit features, Huffman) for every kept-prefix K."""
    from edgebus.codecs.classifier import Classifier
    from edgebus.codecs.pnc import PNCCodec

    codec = PNCCodec(name, root=codec_dir, threads=2)
    clf = Classifier(str(classifier), root=classifier.parent, threads=2)
    images, labels = test.images[:limit], test.labels[:limit]
    m = codec.channels
    syms = np.stack([codec.features(im) for im in images]).astype(np.float32) / (LEVELS - 1)
    top1, top5 = [], []
    for k in range(1, m + 1):
        z = syms.copy()
        z[:, k:] = 0.0
        logits = np.concatenate(
            [clf.logits(codec.reconstruct(z[i : i + 100])) for i in range(0, len(z), 100)]
        )
        top1.append(round(topk_accuracy(logits, labels, 1), 4))
        top5.append(round(topk_accuracy(logits, labels, 5), 4))
    return {"top1_by_features": top1, "top5_by_features": top5, "eval_images": len(images)}


FIXED_RATE_K = (2, 4, 6, 8, 10)


def default_recipes(
    image_size: int = 64,
    channels: int = 10,
    stride: int = 4,
    scale: float = 1.0,
    fixed_k: tuple[int, ...] = FIXED_RATE_K,
    prefix: str = "",
) -> tuple[AERecipe, list[AERecipe]]:
    """The shipped PNC model and its fixed-rate comparators (K = 2, 4, 6, 8, 10), named
    `<prefix>pnc<size>` and `<prefix>ae<size>_k<K>`.

    Fixed-rate models run the same stages, steps and learning rates with twice the distinct
    images per update (PNC's update holds M decoder samples per image instead)."""
    cfg = AEConfig(image_size=image_size, channels=channels, stride=stride)
    pnc = AERecipe(
        f"{prefix}pnc{image_size}",
        cfg,
        # A 224 px update with M taildrop draws costs ~12x a 64 px one on CPU; the large
        # model exists for encode timing, so it trains briefly on small batches.
        batch_size=8 if image_size < 160 else 2,
        recon_steps=max(1, round(1500 * scale)),
        kd_steps=max(1, round(2000 * scale)),
    )
    fixed = [
        replace(
            pnc,
            name=f"{prefix}ae{image_size}_k{k}",
            config=replace(cfg, channels=k),
            taildrop=False,
            batch_size=pnc.batch_size * 2,
        )
        for k in fixed_k
    ]
    return pnc, fixed


def run_recipe(
    recipe: AERecipe,
    out_dir: Path,
    split: DatasetSplit,
    train: ImageSet,
    test: ImageSet | None,
    teacher: torch.nn.Module | None,
    classifier_card: Path | None,
    show_progress: bool = True,
) -> dict[str, Any]:
    if train.images.shape[1] != recipe.config.image_size:
        raise TrainingError(
            f"{recipe.name}: images are {train.images.shape[1]} px, model expects "
            f"{recipe.config.image_size} px"
        )
    start = time.perf_counter()
    model, info = train_autoencoder(recipe, train, teacher, show_progress)
    info["train_seconds"] = round(time.perf_counter() - start, 1)
    info["distilled_from"] = classifier_card.name if (teacher and classifier_card) else None
    card = export_autoencoder(model, recipe, out_dir, train, split, info)
    if test is not None and classifier_card is not None:
        card["test"] = evaluate_prefixes(out_dir, recipe.name, classifier_card, test)
        write_card(out_dir / f"{recipe.name}.json", card)
    return card


# Per data set: the model-name prefix and the distillation teacher's card; the image size
# is fixed by the data for Fashion-MNIST (28 px) and the real photos (224 px, the ImageNet
# classifier's input; its teacher is the torch model the classifier was exported from).
PNC_DATA = {"shapes": ("", "strong_classifier.json"),
            "fashion-mnist": ("fashion_", "fashion_strong_classifier.json"),
            "photos": ("imagenet_", "imagenet_classifier.json")}  # fmt: skip
FASHION_SIZE = 28
DATA_SIZES = {"fashion-mnist": FASHION_SIZE, "photos": 224}


def train_and_export(
    which: str,
    out_dir: Path,
    classifier_dir: Path,
    data_seed: int = 0,
    image_size: int = 64,
    stride: int = 4,
    channels: int = 10,
    scale: float = 1.0,
    train_images: int = 12000,
    distil: bool = True,
    threads: int = 2,
    show_progress: bool = True,
    fixed_k: tuple[int, ...] = FIXED_RATE_K,
    data: str = "shapes",
) -> list[dict[str, Any]]:
    """`which` is "pnc" or "fixed-rate". The data split is the teacher classifier's (same
    seed and sizes; for Fashion-MNIST the published split less its validation hold-out), so
    the test images were never seen by any model."""
    from edgebus.ml.teacher import load_teacher

    if which not in ("pnc", "fixed-rate"):
        raise TrainingError(f"model family {which!r}: expected pnc or fixed-rate")
    if data not in PNC_DATA:
        raise TrainingError(f"data {data!r}: expected one of {', '.join(PNC_DATA)}")
    if DATA_SIZES.get(data, image_size) != image_size:
        raise TrainingError(f"{data} images are {DATA_SIZES[data]} px, not {image_size}")
    prefix, teacher_card = PNC_DATA[data]
    pnc, fixed = default_recipes(image_size, channels, stride, scale, fixed_k, prefix)
    recipes = [pnc] if which == "pnc" else fixed
    teacher, card_path = None, None
    if distil:  # before loading data, so a missing classifier fails at once
        card_path = classifier_dir / teacher_card
        teacher = _imagenet_teacher() if data == "photos" else load_teacher(card_path, image_size)
    split, train, test = _training_data(data, data_seed, image_size, train_images, card_path)
    return [
        run_recipe(
            replace(r, threads=threads, kd_steps=r.kd_steps if distil else 0),
            out_dir, split, train, test if distil else None, teacher, card_path, show_progress,
        )
        for r in recipes
    ]  # fmt: skip


def _imagenet_teacher() -> torch.nn.Module:
    from edgebus.ml.imagenet_export import pretrained_classifier

    return pretrained_classifier()


def _training_data(
    data: str, seed: int, image_size: int, train_images: int, teacher_card: Path | None
) -> tuple[DatasetSplit, ImageSet, ImageSet]:
    from edgebus.ml.datasets import fashion_split, procedural_split
    from edgebus.ml.train_classifiers import DataRecipe

    if data == "photos":
        from edgebus.codecs.classifier import Classifier
        from edgebus.ml.photos import photo_test_set, photo_training_set

        split, train = photo_training_set(train_images, seed)
        if teacher_card is None:  # no teacher, nothing to agree with
            return split, train, train.subset(np.arange(0))
        judge = Classifier(str(teacher_card), root=teacher_card.parent, threads=2)
        return split, train, photo_test_set(lambda x: judge.logits(x).argmax(axis=1))
    if data == "fashion-mnist":
        split, train, _, test = fashion_split(fashion_mnist_dir(), seed)
        return split, train.subset(np.arange(min(train_images, len(train)))), test
    recipe = DataRecipe(seed=seed, image_size=image_size, train=train_images)
    split, train, _, test = procedural_split(
        recipe.seed, recipe.image_size, recipe.train, recipe.val, recipe.test
    )
    return split, train, test
