"""Fashion-MNIST's original IDX files, read with numpy alone (no torch), so a sensor node
can stream the real images the QoS pool was trained on, and training reads the same bytes.

Debian's `dataset-fashion-mnist` installs them under FASHION_MNIST_DIR (`make setup` does,
as root); EDGEBUS_FASHION_MNIST_DIR names another folder holding the same four files. A
missing file is one IdxError line that says how to install it.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

# Where Debian's dataset-fashion-mnist puts the original IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES: tuple[str, ...] = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
    "ankle-boot",
)  # fmt: skip
ENV_VAR = "EDGEBUS_FASHION_MNIST_DIR"
INSTALL_HINT = "install it: apt-get install dataset-fashion-mnist (make setup does, as root)"


class IdxError(ValueError):
    """An IDX file is missing, unreadable or not what its header says."""


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (gzipped or not) as an array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise IdxError(f"IDX file {path}: unreadable ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise IdxError(f"IDX file {path}: expected an unsigned-byte IDX header")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise IdxError(f"IDX file {path}: header cut short")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise IdxError(f"IDX file {path}: header says {dims}, body has {body.size} bytes")
    return body.reshape(dims)


def find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    hint = f"; {INSTALL_HINT}" if root == FASHION_MNIST_DIR else ""
    raise IdxError(f"Fashion-MNIST at {root}: expected {stem} or {stem}.gz{hint}")


def read_fashion_mnist(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of the training or test file."""
    prefix = "train" if train else "t10k"
    images = read_idx(find_idx(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise IdxError(
            f"Fashion-MNIST at {root}: images {images.shape} and labels {labels.shape} disagree"
        )
    return images, labels


def fashion_mnist_dir() -> Path:
    """Where the IDX files are: EDGEBUS_FASHION_MNIST_DIR, else Debian's folder."""
    return Path(os.environ.get(ENV_VAR) or FASHION_MNIST_DIR)


def fashion_test_set() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 test images: what a Fashion-MNIST sensor streams (images no pool model
    was trained or scored on)."""
    return _test_set(fashion_mnist_dir())


@lru_cache(maxsize=2)
def _test_set(root: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_fashion_mnist(root, train=False)  # read once per process and folder


def fashion_mnist_installed() -> bool:
    root = fashion_mnist_dir()
    try:
        find_idx(root, "t10k-images-idx3-ubyte")
        find_idx(root, "t10k-labels-idx1-ubyte")
    except IdxError:
        return False
    return True
