"""Real photos to point a camera at, from an installed package: five photos scikit-image
ships inside its wheel (no download; the grey cameraman is repeated to RGB), saved as
JPEG. They are the demo and test set of the ImageNet classifier; what it answers for
each, measured with the exported model, is in docs/real_data.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

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
