"""Real photos to point a camera at, from an installed package: five photos scikit-image
ships inside its wheel (no download; the grey cameraman is repeated to RGB), saved as
JPEG. They are the demo and test set of the ImageNet classifier; what it answers for
each, measured with the exported model, is in docs/real_data.md.

The other images of the wheel (a horse, motorcycles, the Moon, coins, textures, slides,
pages) are the training set of a 224 px PNC distilled from the ImageNet classifier:
random crops of them, never of the five test photos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from edgebus.ml.datasets import DatasetSplit, ImageSet
from edgebus.ml.errors import DatasetError

# skimage.data loaders whose photos are in the wheel, with the ImageNet class the edge's
# classifier gives each (top-1 on the 224 px frame).
PHOTOS: dict[str, str] = {
    "chelsea": "Egyptian cat",
    "coffee": "espresso",
    "camera": "tripod",
    "rocket": "missile",
    "astronaut": "bobsled, bobsleigh, bob",
}


def write_photos(out: Path) -> list[Path]:
    """Write every photo of PHOTOS to `out` as <name>.jpg; returns the files."""
    try:
        import skimage.data
    except ImportError:
        raise DatasetError(
            "the sample photos come from scikit-image: pip install -e '.[train]' (make setup does)"
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:  # the cameraman is grey
            image = np.stack([image] * 3, axis=-1)
        path = out / f"{name}.jpg"
        Image.fromarray(image[..., :3]).save(path, quality=95)
        written.append(path)
    return written


# Files of scikit-image's wheel (its data folder) that are not the test photos above.
TRAINING_FILES = (
    "horse.png", "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg",
    "grass.png", "gravel.png", "brick.png", "moon.png", "coins.png", "retina.jpg", "ihc.png",
    "page.png", "text.png", "clock_motion.png", "cell.png", "microaneurysms.png",
    "color.png", "logo.png",
)  # fmt: skip
SIZE = 224


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:  # boolean or 16-bit files
        image = (255 * (image.astype(np.float64) / max(1, image.max()))).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def _skimage_data() -> Path:
    try:
        import skimage
    except ImportError:
        raise DatasetError(
            "the photos come from scikit-image: pip install -e '.[train]' (make setup does)"
        ) from None
    return Path(skimage.__file__).parent / "data"


def photo_training_set(count: int, seed: int = 0) -> tuple[DatasetSplit, ImageSet]:
    """`count` random square crops (a third to all of the short side, anywhere in the
    image) of the training files, resized to 224 px; labels are unknown (-1)."""
    folder = _skimage_data()
    images = []
    for name in TRAINING_FILES:
        with Image.open(folder / name) as file:
            images.append(_rgb(np.asarray(file)))
    rng = np.random.default_rng(seed)
    crops = np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(count):
        image = images[int(rng.integers(len(images)))]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(1 / 3, 1.0))
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = Image.fromarray(image[top : top + side, left : left + side])
        crops[i] = np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    split = DatasetSplit("photos", seed, SIZE, count, 0, 0, source="scikit-image data")
    return split, ImageSet(crops, np.full(count, -1, dtype=np.int64), [])


def photo_test_set(labels_of: Callable[[np.ndarray], np.ndarray]) -> ImageSet:
    """The five test photos as a camera frames them (short side to 224 px, centre crop)
    and four corner crops of 80 % of each (25 images), labelled by `labels_of`: the
    teacher's own top-1 on the uncompressed image, so accuracy against them is agreement
    with the teacher, not labelled accuracy."""
    import skimage.data

    frames = []
    for name in PHOTOS:
        image = _rgb(getattr(skimage.data, name)())
        h, w = image.shape[:2]
        side = min(h, w)
        views = [image[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]]
        inner = int(0.8 * side)
        views += [image[t : t + inner, s : s + inner]
                  for t in (0, h - inner) for s in (0, w - inner)]  # fmt: skip
        for view in views:
            frames.append(
                np.asarray(Image.fromarray(view).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
            )
    stacked = np.stack(frames)
    return ImageSet(stacked, labels_of(stacked).astype(np.int64), [])
