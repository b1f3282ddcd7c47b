"""Image datasets: a seeded procedural shape set, loaders for real formats, and recorded splits.

Every dataset is returned as an `ImageSet` of uint8 HxWx3 images plus integer labels, the
same layout the runtime codecs and classifiers consume.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import pickle
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from edgebus.ml.errors import DatasetError

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "ring",
    "crescent",
    "arrow",
)
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


# --- procedural shapes ---------------------------------------------------------------------


def _regular_polygon(n: int, radius: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star(radius: float) -> np.ndarray:
    outer = _regular_polygon(5, radius, -math.pi / 2)
    inner = _regular_polygon(5, radius * 0.42, -math.pi / 2 + math.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _cross(radius: float) -> np.ndarray:
    a, b = radius, radius * 0.33
    return np.array(
        [[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b],
         [-a, -b], [-b, -b]]
    )  # fmt: skip


def _arrow(radius: float) -> np.ndarray:
    a, s, h = radius, radius * 0.22, radius * 0.55
    return np.array([[-a, -s], [0.1 * a, -s], [0.1 * a, -h], [a, 0], [0.1 * a, h], [0.1 * a, s],
                     [-a, s]])  # fmt: skip


def _outline(name: str, radius: float) -> np.ndarray | None:
    """Vertices of a polygonal class centred on the origin; None for the round classes."""
    if name == "square":
        return _regular_polygon(4, radius * 1.15, math.pi / 4)
    if name == "triangle":
        return _regular_polygon(3, radius * 1.2, -math.pi / 2)
    if name == "pentagon":
        return _regular_polygon(5, radius, -math.pi / 2)
    if name == "hexagon":
        return _regular_polygon(6, radius)
    if name == "star":
        return _star(radius * 1.2)
    if name == "cross":
        return _cross(radius)
    if name == "arrow":
        return _arrow(radius * 1.1)
    return None


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    name: str,
    centre: tuple[float, float],
    radius: float,
    angle: float,
    colour: tuple[int, int, int],
    background: tuple[int, int, int],
) -> None:
    cx, cy = centre
    poly = _outline(name, radius)
    if poly is not None:
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        pts = poly @ rot.T + np.array([cx, cy])
        draw.polygon([tuple(p) for p in pts.tolist()], fill=colour)
        return
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    draw.ellipse(box, fill=colour)
    if name == "ring":
        r = radius * 0.55
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=background)
    elif name == "crescent":
        dx, dy = 0.45 * radius * math.cos(angle), 0.45 * radius * math.sin(angle)
        r = radius * 0.85
        draw.ellipse([cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r], fill=background)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random texture: a colour gradient, stripes and low-frequency blotches."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    tint = rng.uniform(-90, 90, size=3).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    freq = rng.uniform(2, 9)
    stripes = np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)))
    coarse = rng.normal(0, 1, size=(4, 4, 3)).astype(np.float32)
    blotch = np.asarray(
        Image.fromarray(
            ((coarse - coarse.min()) / (np.ptp(coarse) + 1e-6) * 255).astype(np.uint8)
        ).resize((size, size), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    img = base + tint * xx[..., None] + rng.uniform(10, 45) * stripes[..., None]
    img = img + (blotch - 128.0) * rng.uniform(0.1, 0.5)
    return np.clip(img, 0, 255)


def render_shape(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, int]:
    """Render image `index` of the procedural set: the same (seed, index, size) always gives
    the same pixels, so a split can be recorded as index ranges."""
    if size < 16:
        raise DatasetError(f"image size: expected at least 16 pixels, got {size}")
    rng = np.random.default_rng([seed, index, size])
    label = int(index % len(SHAPE_CLASSES))
    bg = _background(rng, size)
    image = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # Clutter first so the object sits on top; thin strokes and dots that are no class.
    for _ in range(int(rng.integers(0, 6))):
        p = rng.uniform(0, size, size=4)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.6:
            draw.line([float(v) for v in p], fill=colour, width=int(rng.integers(1, 3)))
        else:
            r = float(rng.uniform(1, max(1.5, size * 0.06)))
            draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)
    radius = float(rng.uniform(0.12, 0.34) * size)
    margin = radius * 0.8
    centre = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
    angle = float(rng.uniform(0, 2 * math.pi))
    bg_here = bg[int(min(centre[1], size - 1)), int(min(centre[0], size - 1))]
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    if float(np.abs(np.asarray(colour, dtype=np.float32) - bg_here).sum()) < 120:
        colour = tuple(int(255 - c) for c in colour)
    hole = tuple(int(c) for c in bg_here)
    _draw_shape(draw, SHAPE_CLASSES[label], centre, radius, angle, colour, hole)  # type: ignore[arg-type]
    out = np.asarray(image, dtype=np.float32)
    out += rng.normal(0, rng.uniform(2, 22), size=out.shape).astype(np.float32)
    if rng.random() < 0.3:
        out = np.asarray(
            Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).reduce(2).resize((size, size)),
            dtype=np.float32,
        )
    return np.clip(out, 0, 255).astype(np.uint8), label


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


FASHION_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
    "ankle-boot",
]  # fmt: skip


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"IDX file {path}: unreadable ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"IDX file {path}: expected an unsigned-byte IDX header")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise DatasetError(f"IDX file {path}: header says {dims}, body has {body.size} bytes")
    return body.reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise DatasetError(f"Fashion-MNIST at {root}: expected {stem} or {stem}.gz")


def load_fashion_mnist(root: str | Path, train: bool = True, size: int | None = None) -> ImageSet:
    """Fashion-MNIST IDX files (gzipped or not); grey images are repeated to 3 channels."""
    root = Path(root)
    prefix = "train" if train else "t10k"
    images = _read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise DatasetError(
            f"Fashion-MNIST at {root}: images {images.shape} and labels {labels.shape} disagree"
        )
    rgb = np.repeat(images[..., None], 3, axis=-1)
    return ImageSet(_resize_all(rgb, size), labels, list(FASHION_CLASSES))


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
