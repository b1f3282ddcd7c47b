"""Image datasets: a seeded procedural shape set, loaders for real formats, and recorded splits.

Every dataset is returned as an `ImageSet` of uint8 HxWx3 images plus integer labels, the
same layout the runtime codecs and classifiers consume.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgebus.fashion_mnist import FASHION_CLASSES, FASHION_MNIST_DIR, IdxError, read_fashion_mnist
from edgebus.ml.errors import DatasetError
from edgebus.shapes import SHAPE_CLASSES, ShapeSizeError
from edgebus.shapes import render_shape as _render_shape

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".JPEG", ".JPG", ".PNG")


@dataclass
class ImageSet:
    """Images (N, H, W, 3) uint8 with labels (N,) int64 and the class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise DatasetError(
                f"images: expected a (N, H, W, 3) uint8 array, got {self.images.shape} "
                f"{self.images.dtype}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DatasetError(
                f"labels: expected shape ({self.images.shape[0]},), got {self.labels.shape}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.class_names)


def render_shape(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, int]:
    """Image `index` of the procedural set (see `edgebus.shapes.render_shape`)."""
    try:
        return _render_shape(seed, index, size)
    except ShapeSizeError as exc:
        raise DatasetError(str(exc)) from None


def procedural_shapes(seed: int, start: int, count: int, size: int = 64) -> ImageSet:
    """Images start .. start+count-1 of the procedural set for `seed` at `size` pixels."""
    if count < 0 or start < 0:
        raise DatasetError(f"procedural range: expected start, count >= 0, got {start}, {count}")
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        images[i], labels[i] = render_shape(seed, start + i, size)
    return ImageSet(images, labels, list(SHAPE_CLASSES))


# --- splits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSplit:
    """How train/val/test were drawn, stored with every trained asset so it can be rebuilt."""

    kind: str
    seed: int
    image_size: int
    train: int
    val: int
    test: int
    source: str = ""
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetSplit:
        try:
            return cls(**data)
        except TypeError as exc:
            raise DatasetError(f"split record: unexpected fields ({exc})") from None


def procedural_split(
    seed: int, image_size: int, train: int, val: int, test: int
) -> tuple[DatasetSplit, ImageSet, ImageSet, ImageSet]:
    """Disjoint consecutive index ranges of the procedural set: train, then val, then test."""
    split = DatasetSplit("procedural", seed, image_size, train, val, test, source="shapes")
    return (
        split,
        procedural_shapes(seed, 0, train, image_size),
        procedural_shapes(seed, train, val, image_size),
        procedural_shapes(seed, train + val, test, image_size),
    )


def random_split(
    data: ImageSet, seed: int, val: int, test: int, source: str = ""
) -> tuple[DatasetSplit, ImageSet, ImageSet, ImageSet]:
    """A seeded permutation of a loaded set; the record carries a hash of the labels so a
    different copy of the data is noticed."""
    n = len(data)
    if val + test >= n:
        raise DatasetError(f"split of {source or 'dataset'}: {n} images cannot give {val}+{test}")
    order = np.random.default_rng(seed).permutation(n)
    tr, va, te = order[: n - val - test], order[n - val - test : n - test], order[n - test :]
    fingerprint = hashlib.sha256(data.labels.tobytes()).hexdigest()[:16]
    split = DatasetSplit(
        "permutation", seed, int(data.images.shape[1]), len(tr), val, test, source, fingerprint
    )
    return split, data.subset(tr), data.subset(va), data.subset(te)


# --- real formats --------------------------------------------------------------------------


def _fit(image: Image.Image, size: int | None) -> np.ndarray:
    """Resize the short side to `size` and centre-crop, the usual ImageNet-val preparation."""
    image = image.convert("RGB")
    if size is not None:
        w, h = image.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)


def _resize_all(images: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or images.shape[1:3] == (size, size):
        return images
    return np.stack([_fit(Image.fromarray(im), size) for im in images])


def load_image_folder(root: str | Path, size: int = 64, limit: int | None = None) -> ImageSet:
    """An ImageFolder tree: root/<class>/<image>; classes sorted by folder name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root}: expected a directory of class folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"image folder {root}: expected class sub-folders, found none")
    items = [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).iterdir())
        if f.suffix in IMAGE_SUFFIXES
    ]
    if limit is not None:
        items = items[:limit]
    if not items:
        raise DatasetError(f"image folder {root}: expected image files, found none")
    images = []
    for path, _ in items:
        try:
            with Image.open(path) as im:
                images.append(_fit(im, size))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"image {path}: not a readable image ({exc})") from None
    labels = np.array([label for _, label in items], dtype=np.int64)
    return ImageSet(np.stack(images), labels, classes)


def load_cifar10(root: str | Path, train: bool = True, size: int | None = None) -> ImageSet:
    """CIFAR-10 python batches (data_batch_1..5 / test_batch, batches.meta)."""
    root = Path(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    paths = [root / n for n in names if (root / n).exists()]
    if not paths:
        raise DatasetError(f"CIFAR-10 at {root}: expected {names[0]} (python batch files)")
    images, labels = [], []
    for path in paths:
        try:
            with path.open("rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as exc:
            raise DatasetError(f"CIFAR-10 batch {path}: not a python batch ({exc})") from None
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DatasetError(f"CIFAR-10 batch {path}: expected (N, 3072) data, got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    class_names = [f"class_{i}" for i in range(10)]
    meta = root / "batches.meta"
    if meta.exists():
        with meta.open("rb") as fh:
            raw = pickle.load(fh, encoding="bytes")
        class_names = [n.decode() for n in raw.get(b"label_names", [])] or class_names
    return ImageSet(_resize_all(np.concatenate(images), size), np.concatenate(labels), class_names)


def load_fashion_mnist(root: str | Path, train: bool = True, size: int | None = None) -> ImageSet:
    """Fashion-MNIST IDX files (gzipped or not); grey images are repeated to 3 channels."""
    try:
        images, labels = read_fashion_mnist(Path(root), train)
    except IdxError as exc:
        raise DatasetError(str(exc)) from None
    rgb = np.repeat(images[..., None], 3, axis=-1)
    return ImageSet(_resize_all(rgb, size), labels, list(FASHION_CLASSES))


def fashion_split(
    root: Path = FASHION_MNIST_DIR, seed: int = 0, val: int = 5000
) -> tuple[DatasetSplit, ImageSet, ImageSet, ImageSet]:
    """Fashion-MNIST as published: the 60,000 training images less a seeded validation
    hold-out of `val`, and the 10,000 test images untouched (28 px, grey as RGB)."""
    train_all = load_fashion_mnist(root, train=True)
    test = load_fashion_mnist(root, train=False)
    order = np.random.default_rng(seed).permutation(len(train_all))
    fingerprint = hashlib.sha256(train_all.labels.tobytes() + test.labels.tobytes()).hexdigest()
    split = DatasetSplit(
        "fashion-mnist", seed, 28, len(train_all) - val, val, len(test), str(root),
        fingerprint[:16],
    )  # fmt: skip
    return split, train_all.subset(order[val:]), train_all.subset(order[:val]), test


def load_dataset(kind: str, root: str | Path, size: int, train: bool = True) -> ImageSet:
    """Dispatch on a format name: imagefolder, cifar10 or fashion-mnist."""
    loaders = {
        "imagefolder": lambda: load_image_folder(root, size),
        "cifar10": lambda: load_cifar10(root, train, size),
        "fashion-mnist": lambda: load_fashion_mnist(root, train, size),
    }
    if kind not in loaders:
        raise DatasetError(f"dataset kind {kind!r}: expected one of {sorted(loaders)}")
    return loaders[kind]()
