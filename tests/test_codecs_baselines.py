"""Baseline codecs behind the Codec interface, the registry and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from edgebus.codecs import get_codec
from edgebus.codecs.errors import CodecError, ImageShapeError
from edgebus.codecs.image_codecs import ProgressiveJpegCodec
from edgebus.codecs.registry import codec_names
from edgebus.ml.datasets import render_shape


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_shape(0, 5, 64)[0]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("jpeg", {"quality": 50}),
        ("pjpeg", {"quality": 30}),
        ("webp", {"quality": 20, "method": 6}),
        ("webp", {"quality": 0, "method": 0}),
        ("raw", {}),
    ],
)
def test_round_trip(image: np.ndarray, name: str, params: dict[str, int]) -> None:
    codec = get_codec(name, image_size=64, **params)
    frame = codec.encode(image)
    assert frame.size == sum(frame.unit_sizes) > 0 and frame.encode_seconds > 0
    decoded = codec.decode_frame(frame.units)
    assert decoded.image.shape == (64, 64, 3) and decoded.image.dtype == np.uint8
    assert decoded.decode_seconds > 0 and decoded.units_used == len(frame.units)
    error = np.abs(decoded.image.astype(int) - image.astype(int)).mean()
    assert error < (1e-9 if name == "raw" else 40)


def test_progressive_jpeg_decodes_every_block_prefix(image: np.ndarray) -> None:
    codec = ProgressiveJpegCodec(quality=30, image_size=64, block_size=64)
    frame = codec.encode(image)
    assert all(len(u) == 64 for u in frame.units[:-1])
    full = codec.decode(frame.units).astype(int)
    errors = []
    for n in range(len(frame.units) + 1):
        out = codec.decode(frame.units[:n])
        assert out.shape == (64, 64, 3)
        errors.append(np.abs(out.astype(int) - full).mean())
    assert errors[0] > errors[-1] == 0
    # Past the headers, partial scans already give a picture far closer than nothing.
    assert errors[len(errors) * 3 // 4] < errors[0] / 2


def test_truncated_baseline_jpeg_falls_back_to_blank(image: np.ndarray) -> None:
    codec = get_codec("jpeg", quality=50, image_size=64)
    data = codec.encode(image).stream()
    assert not codec.decode([data[:20]]).any()
    assert codec.decode([]).shape == (64, 64, 3)


def test_raw_prefix_fills_the_top(image: np.ndarray) -> None:
    codec = get_codec("raw", image_size=64, block_size=64 * 3)
    frame = codec.encode(image)
    out = codec.decode(frame.units[:10])
    assert np.array_equal(out[:10], image[:10]) and not out[10:].any()


def test_frame_prefix_respects_budget(image: np.ndarray) -> None:
    frame = get_codec("pjpeg", image_size=64).encode(image)
    assert frame.prefix(0) == []
    assert sum(map(len, frame.prefix(200))) <= 200
    assert frame.prefix(10**9) == frame.units
    assert frame.stream() == b"".join(frame.units)


def test_bad_inputs_have_clear_errors(image: np.ndarray) -> None:
    codec = get_codec("webp", image_size=64)
    with pytest.raises(ImageShapeError, match="64x64x3"):
        codec.encode(image[:32])
    with pytest.raises(ImageShapeError, match="uint8"):
        codec.encode(image.astype(np.float32))
    with pytest.raises(ImageShapeError, match="HxWx3"):
        codec.encode(image[..., 0])
    with pytest.raises(CodecError, match="quality"):
        get_codec("jpeg", quality=101)
    with pytest.raises(CodecError, match="method"):
        get_codec("webp", method=9)
    with pytest.raises(CodecError, match="expected one of"):
        get_codec("gif")
    with pytest.raises(CodecError, match="bad parameters"):
        get_codec("raw", colour=True)
    assert {"pnc", "jpeg", "pjpeg", "webp", "raw"} <= set(codec_names())
