"""Procedural data, split records and the real-format loaders on tiny files written here."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgebus.ml.datasets import (
    SHAPE_CLASSES,
    DatasetSplit,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    procedural_shapes,
    procedural_split,
    random_split,
    render_shape,
)
from edgebus.ml.errors import DatasetError


def test_procedural_is_deterministic_and_balanced() -> None:
    a = procedural_shapes(seed=3, start=0, count=30, size=32)
    b = procedural_shapes(seed=3, start=0, count=30, size=32)
    c = procedural_shapes(seed=4, start=0, count=30, size=32)
    assert a.images.shape == (30, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert len(SHAPE_CLASSES) >= 10
    assert sorted(set(a.labels.tolist())) == list(range(len(SHAPE_CLASSES)))
    image, label = render_shape(3, 7, 32)
    assert np.array_equal(image, a.images[7]) and label == a.labels[7]


def test_procedural_split_is_disjoint_and_recorded() -> None:
    split, train, val, test = procedural_split(seed=1, image_size=24, train=20, val=5, test=5)
    assert (len(train), len(val), len(test)) == (20, 5, 5)
    assert np.array_equal(test.images[0], render_shape(1, 25, 24)[0])
    again = DatasetSplit.from_json(split.to_json())
    assert again == split


def test_random_split_records_a_fingerprint() -> None:
    data = procedural_shapes(0, 0, 20, 16)
    split, train, val, test = random_split(data, seed=2, val=4, test=4, source="x")
    assert (len(train), len(val), len(test)) == (12, 4, 4) and split.fingerprint
    with pytest.raises(DatasetError, match="cannot give"):
        random_split(data, seed=2, val=10, test=10)


def test_too_small_image_size_is_rejected() -> None:
    with pytest.raises(DatasetError, match="at least 16"):
        render_shape(0, 0, 8)


def test_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 255, size=(40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, size=32)
    assert data.images.shape == (6, 32, 32, 3)
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert load_dataset("imagefolder", tmp_path, 16).images.shape == (6, 16, 16, 3)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="expected a directory"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="class sub-folders"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="not a readable image"):
        load_image_folder(tmp_path)


def test_cifar10_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, size=(4, 3072), dtype=np.uint8)
    with (tmp_path / "data_batch_1").open("wb") as fh:
        pickle.dump({b"data": data, b"labels": [0, 1, 2, 3]}, fh)
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": data[:2], b"labels": [5, 6]}, fh)
    names = [f"n{i}".encode() for i in range(10)]
    with (tmp_path / "batches.meta").open("wb") as fh:
        pickle.dump({b"label_names": names}, fh)
    train = load_cifar10(tmp_path, train=True)
    assert train.images.shape == (4, 32, 32, 3)
    # CIFAR stores planes (R, G, B) of 32x32; pixel (0, 0) takes bytes 0, 1024 and 2048.
    assert train.images[0, 0, 0].tolist() == [data[0, 0], data[0, 1024], data[0, 2048]]
    assert train.class_names[3] == "n3"
    test = load_cifar10(tmp_path, train=False, size=64)
    assert test.images.shape == (2, 64, 64, 3) and test.labels.tolist() == [5, 6]
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_cifar10(tmp_path / "nowhere")


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_idx(tmp_path: Path, compress: bool) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.array([9, 0, 4]), compress)
    data = load_fashion_mnist(tmp_path, train=False)
    assert data.images.shape == (3, 28, 28, 3)
    assert np.array_equal(data.images[..., 1], images.astype(np.uint8))
    assert data.labels.tolist() == [9, 0, 4] and data.class_names[9] == "ankle-boot"
    assert load_fashion_mnist(tmp_path, train=False, size=32).images.shape == (3, 32, 32, 3)


def test_fashion_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03garbage")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DatasetError, match="IDX header"):
        load_fashion_mnist(tmp_path)


def test_unknown_dataset_kind(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="expected one of"):
        load_dataset("mnist-ish", tmp_path, 32)
