"""The codec interface every frame codec implements.

A codec turns an HxWx3 uint8 image into an `EncodedFrame`: a list of self-contained units in
importance order. A sender may stop after any whole unit; `decode` accepts whatever units
arrived and always returns an image of the codec's shape.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edgebus.codecs.errors import CodecError, ImageShapeError


@dataclass(frozen=True)
class EncodedFrame:
    """Units in the order they should go on the wire, plus what encoding cost."""

    codec: str
    units: list[bytes]
    shape: tuple[int, int, int]
    encode_seconds: float

    @property
    def size(self) -> int:
        return sum(len(u) for u in self.units)

    @property
    def unit_sizes(self) -> list[int]:
        return [len(u) for u in self.units]

    def prefix(self, budget: int) -> list[bytes]:
        """The longest run of leading whole units that fits in `budget` bytes."""
        out: list[bytes] = []
        used = 0
        for unit in self.units:
            if used + len(unit) > budget:
                break
            out.append(unit)
            used += len(unit)
        return out

    def stream(self) -> bytes:
        return b"".join(self.units)


@dataclass(frozen=True)
class DecodedFrame:
    image: np.ndarray
    decode_seconds: float
    units_used: int
    units_rejected: int


class Codec(ABC):
    """Subclasses implement `_encode_units` and `_decode_units`; timing and input checks
    live here so every codec reports them the same way."""

    name: str = "codec"
    #: True when `decode` of any strict prefix of the units gives a usable image.
    progressive: bool = False
    #: True when each unit is meaningful on its own and framed on the wire (PNC features);
    #: False for a file format, whose frame is one unit that counts only whole.
    unit_stream: bool = False

    def __init__(self, image_size: int | None = None) -> None:
        self.image_size = image_size

    def encode(self, image: np.ndarray) -> EncodedFrame:
        image = self.check_image(image)
        start = time.perf_counter()
        units = self._encode_units(image)
        seconds = time.perf_counter() - start
        return EncodedFrame(self.name, units, tuple(image.shape), seconds)

    def decode(self, units: Sequence[bytes]) -> np.ndarray:
        return self.decode_frame(units).image

    def decode_frame(self, units: Sequence[bytes]) -> DecodedFrame:
        start = time.perf_counter()
        image, used, rejected = self._decode_units(list(units))
        return DecodedFrame(image, time.perf_counter() - start, used, rejected)

    def decode_batch(self, streams: Sequence[bytes]) -> list[DecodedFrame | CodecError]:
        """Decode several frames, each given as the bytes its chunks carried, in order. A
        frame that cannot be decoded gets its CodecError and the others are decoded. Here
        each stream is one (maybe cut) file, decoded frame by frame; a codec with a network
        decoder runs the batch through it at once (PNC)."""
        out: list[DecodedFrame | CodecError] = []
        for stream in streams:
            try:
                out.append(self.decode_frame([stream] if stream else []))
            except CodecError as exc:
                out.append(exc)
        return out

    def encode_stream(self, image: np.ndarray) -> Iterator[bytes]:
        """Yield units as they become ready; codecs that can hand out the first unit early
        override this."""
        yield from self.encode(image).units

    def check_image(self, image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise ImageShapeError(f"image: expected an HxWx3 uint8 array, got {shape}")
        if image.dtype != np.uint8:
            raise ImageShapeError(f"image: expected dtype uint8, got {image.dtype}")
        size = self.image_size
        if size is not None and image.shape[:2] != (size, size):
            raise ImageShapeError(
                f"image: codec {self.name} expects {size}x{size}x3, got {image.shape}"
            )
        return np.ascontiguousarray(image)

    def blank(self) -> np.ndarray:
        """What a decoder returns when nothing usable arrived: an all-zero image of the
        codec's `image_size` (0x0 when the codec was built without one)."""
        size = self.image_size or 0
        return np.zeros((size, size, 3), dtype=np.uint8)

    @abstractmethod
    def _encode_units(self, image: np.ndarray) -> list[bytes]: ...

    @abstractmethod
    def _decode_units(self, units: list[bytes]) -> tuple[np.ndarray, int, int]:
        """Return (image, units used, units rejected)."""
