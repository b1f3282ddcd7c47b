"""Frame sources for cameras: the procedural shape set, an image folder, or a video file.

Every source returns frames of one fixed size with their label when it knows it (-1 when
not). The label rides along only for evaluation; nothing on the edge uses it to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgebus.fashion_mnist import IdxError, fashion_test_set
from edgebus.flat_data import FLAT_KINDS, flat_item
from edgebus.shapes import render_shape

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"})
UNKNOWN_LABEL = -1


@dataclass(slots=True)
class CapturedFrame:
    """One frame as the camera took it from its source, with its deadline."""

    frame_id: int
    image: np.ndarray  # H×W×3 uint8
    label: int
    capture_ts: float  # wall clock, on the wire
    capture_mono: float
    deadline_mono: float  # when the next frame is due
    deadline_ts: float


# The image of a frame not read yet (the encoder thread reads it; see EncodeJob.read).
UNREAD = np.zeros((0, 0, 3), dtype=np.uint8)
UNREAD.flags.writeable = False


class SourceError(ValueError):
    """A source spec, folder or file that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class Frame:
    frame_id: int
    image: np.ndarray  # H×W×3 uint8, or a float32 vector from a flat source
    label: int = UNKNOWN_LABEL


class FrameSource(Protocol):
    def frame(self, frame_id: int) -> Frame: ...

    def close(self) -> None: ...


def fit_image(image: Image.Image, size: int) -> np.ndarray:
    """Resize the short side to `size` and centre-crop to a square, as the classifier expects."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


class SyntheticSource:
    """Images of the procedural shape set: frame i is shape image `start + i` of `seed`, so
    an experiment can rebuild any frame (and its label) from the camera's settings."""

    def __init__(self, size: int = 64, seed: int = 0, start: int = 0) -> None:
        if size < 16:
            raise SourceError(f"synthetic source: frames need at least 16 pixels, got {size}")
        self.size, self.seed, self.start = size, seed, start

    def frame(self, frame_id: int) -> Frame:
        image, label = render_shape(self.seed, self.start + frame_id, self.size)
        return Frame(frame_id, image, label)

    def close(self) -> None:
        pass


def _fashion_test_images() -> tuple[np.ndarray, np.ndarray]:
    """Read now (once per process), so a missing data set stops the node at start, in one
    line, not at its first frame."""
    try:
        return fashion_test_set()
    except IdxError as exc:
        raise SourceError(f"source fashion-mnist: {exc}") from None


class FashionImageSource:
    """Fashion-MNIST's 10,000 test images as camera frames (28 px grey, repeated to RGB as
    the Fashion-MNIST classifiers take them), cycling from `start`; none was trained on."""

    SIZE = 28

    def __init__(self, size: int = SIZE, start: int = 0) -> None:
        if size != self.SIZE:
            raise SourceError(
                f"source fashion-mnist: its images are {self.SIZE} px; set frame_width and "
                f"frame_height to {self.SIZE}, got {size}"
            )
        self.images, self.labels = _fashion_test_images()
        self.start = start

    def frame(self, frame_id: int) -> Frame:
        i = (self.start + frame_id) % len(self.images)
        image = np.repeat(self.images[i][..., None], 3, axis=-1)
        return Frame(frame_id, image, int(self.labels[i]))

    def close(self) -> None:
        pass


class FolderSource:
    """An ImageFolder tree (root/<class>/<image>, classes sorted by name) or a flat folder of
    images (labels unknown), played in a loop."""

    def __init__(
        self, root: Path, size: int = 64, classifier_classes: Sequence[str] | None = None
    ) -> None:
        if not root.is_dir():
            raise SourceError(f"image folder {str(root)!r}: expected a directory")
        self.size = size
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if classes:
            labels = _folder_labels(classes, classifier_classes)
            self.items = [
                (f, labels[name])
                for name in classes
                for f in sorted((root / name).iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES
            ]
        else:
            self.items = [
                (f, UNKNOWN_LABEL)
                for f in sorted(root.iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES
            ]
        if not self.items:
            raise SourceError(f"image folder {str(root)!r}: no image files found")

    def frame(self, frame_id: int) -> Frame:
        path, label = self.items[frame_id % len(self.items)]
        try:
            with Image.open(path) as image:
                return Frame(frame_id, fit_image(image, self.size), label)
        except (UnidentifiedImageError, OSError) as exc:
            raise SourceError(f"image {str(path)!r}: not a readable image ({exc})") from None

    def close(self) -> None:
        pass


def _folder_labels(folders: list[str], classifier_classes: Sequence[str] | None) -> dict[str, int]:
    """Each class folder's label: its place in the sorted folders (an ImageFolder tree made
    for the classifier), or, given the classifier's class names, the index of the class it
    names ("espresso", or any synonym of "tabby, tabby cat"); unknown if it names none."""
    if classifier_classes is None:
        return {name: index for index, name in enumerate(folders)}
    index_of: dict[str, int] = {}
    for index, names in enumerate(classifier_classes):
        for name in names.split(","):
            index_of.setdefault(name.strip().lower(), index)
    return {name: index_of.get(name.replace("_", " ").lower(), UNKNOWN_LABEL) for name in folders}


class VideoSource:
    """Frames of a video file through OpenCV (the optional `video` extra), looped at the end."""

    def __init__(self, path: Path, size: int = 64) -> None:
        try:
            import cv2
        except ImportError:
            raise SourceError(
                "video source: OpenCV is not installed (pip install 'edgebus[video]')"
            ) from None
        if not path.is_file():
            raise SourceError(f"video file {str(path)!r} does not exist")
        self._cv2 = cv2
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise SourceError(f"video file {str(path)!r}: OpenCV cannot open it")
        self.path, self.size = path, size

    def frame(self, frame_id: int) -> Frame:
        ok, bgr = self._capture.read()
        if not ok:  # end of file: start over
            self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
            if not ok:
                raise SourceError(f"video file {str(self.path)!r}: no frames could be read")
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        return Frame(frame_id, fit_image(Image.fromarray(rgb), self.size))

    def close(self) -> None:
        self._capture.release()


class FlatSource:
    """Items of the QoS orchestrator's flat data sets (`accelerometer` windows, `shapes28`
    images or Fashion-MNIST's test images) as float32 vectors, for a sensor that streams
    to the pool's models."""

    def __init__(self, kind: str, seed: int = 0, start: int = 0) -> None:
        if kind not in FLAT_KINDS:
            raise SourceError(f"flat source {kind!r}: expected one of {', '.join(FLAT_KINDS)}")
        if kind == "fashion-mnist":
            _fashion_test_images()
        self.kind, self.seed, self.start = kind, seed, start

    def frame(self, frame_id: int) -> Frame:
        x, label = flat_item(self.kind, self.seed, self.start + frame_id)
        return Frame(frame_id, x, label)

    def close(self) -> None:
        pass


def open_source(
    spec: str, size: int = 64, seed: int = 0, classifier_classes: Sequence[str] | None = None,
    flat: bool = False,
) -> FrameSource:  # fmt: skip
    """`synthetic`, `folder:<dir>`, `video:<file>`, or a flat data set (`accelerometer`,
    `shapes28`, `fashion-mnist`) for the QoS orchestrator's models. `fashion-mnist` is
    images for an image codec unless `flat` (the QoS codec). A folder's class folders are
    labelled by the classifier's class names when given (see _folder_labels)."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic" and not arg:
        return SyntheticSource(size, seed)
    if kind == "fashion-mnist" and not arg and not flat:
        return FashionImageSource(size)
    if kind in FLAT_KINDS and not arg:
        return FlatSource(kind, seed)
    if kind == "folder" and arg:
        return FolderSource(Path(arg), size, classifier_classes)
    if kind == "video" and arg:
        return VideoSource(Path(arg), size)
    raise SourceError(
        f"source {spec!r}: expected synthetic, folder:<dir>, video:<file>, accelerometer, "
        "shapes28 or fashion-mnist"
    )
