"""Baseline codecs through Pillow: JPEG, progressive JPEG, WebP, and raw pixels."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from edgebus.codecs.base import Codec
from edgebus.codecs.errors import CodecError

_TRUNCATED_LOCK = threading.Lock()


@contextmanager
def _allow_truncated() -> Iterator[None]:
    # Pillow reads this flag as a module global; hold it only while one decode runs.
    with _TRUNCATED_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _check_quality(quality: int) -> int:
    if not 0 <= int(quality) <= 100:
        raise CodecError(f"quality: expected 0..100, got {quality}")
    return int(quality)


def _blocks(data: bytes, block_size: int | None) -> list[bytes]:
    if not block_size:
        return [data]
    return [data[i : i + block_size] for i in range(0, len(data), block_size)]


class _PillowCodec(Codec):
    format: str = ""

    def __init__(self, image_size: int | None = None, block_size: int | None = None) -> None:
        super().__init__(image_size)
        if block_size is not None and block_size < 1:
            raise CodecError(f"block_size: expected a positive byte count, got {block_size}")
        self.block_size = block_size

    def _save_params(self) -> dict[str, object]:
        return {}

    def _encode_units(self, image: np.ndarray) -> list[bytes]:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=self.format, **self._save_params())
        return _blocks(buf.getvalue(), self.block_size)

    def _open(self, data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    def _decode_units(self, units: list[bytes]) -> tuple[np.ndarray, int, int]:
        data = b"".join(units)
        try:
            image = self._open(data)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return self._fallback(), 0, len(units)
        if self.image_size is not None and image.shape[:2] != (self.image_size,) * 2:
            return self._fallback(), 0, len(units)
        return image, len(units), 0

    def _fallback(self) -> np.ndarray:
        return self.blank()


class JpegCodec(_PillowCodec):
    """Baseline JPEG: only the whole file decodes."""

    name = "jpeg"
    format = "JPEG"

    def __init__(
        self, quality: int = 75, image_size: int | None = None, block_size: int | None = None
    ) -> None:
        super().__init__(image_size, block_size)
        self.quality = _check_quality(quality)

    def _save_params(self) -> dict[str, object]:
        return {"quality": self.quality, "optimize": True}


class ProgressiveJpegCodec(JpegCodec):
    """Progressive JPEG decoded from whatever byte prefix arrived, as the paper's baseline
    does with Pillow's LOAD_TRUNCATED_IMAGES. Units are fixed-size byte blocks."""

    name = "pjpeg"
    progressive = True

    def __init__(
        self, quality: int = 30, image_size: int | None = None, block_size: int | None = 64
    ) -> None:
        super().__init__(quality, image_size, block_size)

    def _save_params(self) -> dict[str, object]:
        return {"quality": self.quality, "optimize": True, "progressive": True}

    def _open(self, data: bytes) -> np.ndarray:
        with _allow_truncated():
            return super()._open(data)


class WebpCodec(_PillowCodec):
    """Lossy WebP with quality q and effort method m (0 fast .. 6 slow)."""

    name = "webp"
    format = "WEBP"

    def __init__(
        self,
        quality: int = 20,
        method: int = 6,
        image_size: int | None = None,
        block_size: int | None = None,
    ) -> None:
        super().__init__(image_size, block_size)
        self.quality = _check_quality(quality)
        if not 0 <= int(method) <= 6:
            raise CodecError(f"webp method: expected 0..6, got {method}")
        self.method = int(method)

    def _save_params(self) -> dict[str, object]:
        return {"quality": self.quality, "method": self.method}


class RawCodec(Codec):
    """Uncompressed RGB rows; a byte prefix fills the top of the image, the rest stays zero."""

    name = "raw"
    progressive = True

    def __init__(self, image_size: int = 64, block_size: int | None = None) -> None:
        super().__init__(image_size)
        self.block_size = block_size

    def _encode_units(self, image: np.ndarray) -> list[bytes]:
        return _blocks(image.tobytes(), self.block_size)

    def _decode_units(self, units: list[bytes]) -> tuple[np.ndarray, int, int]:
        flat = self.blank().reshape(-1)
        data = np.frombuffer(b"".join(units), dtype=np.uint8)[: flat.size]
        flat[: data.size] = data
        return flat.reshape(self.blank().shape), len(units), 0
