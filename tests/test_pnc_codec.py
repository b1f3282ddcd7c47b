"""PNC codec on a tiny freshly trained model: every prefix, corrupt and foreign units."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgebus.codecs import get_codec
from edgebus.codecs.errors import CodecError, ModelFileError
from edgebus.codecs.pnc import PNCCodec
from edgebus.codecs.pnc_wire import pack_unit, parse_unit, split_stream
from edgebus.ml.datasets import procedural_split
from edgebus.ml.models import AEConfig, StrongClassifier
from edgebus.ml.train_pnc import AERecipe, run_recipe

CHANNELS = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pnc")
    split, train, _, _ = procedural_split(seed=5, image_size=32, train=48, val=0, test=0)
    recipe = AERecipe(
        "tiny", AEConfig(image_size=32, channels=CHANNELS, stride=4, hidden=8, decoder_width=12),
        batch_size=4, recon_steps=3, kd_steps=2,
    )  # fmt: skip
    run_recipe(recipe, out, split, train, None, StrongClassifier(10, 4), None, False)
    return out


@pytest.fixture(scope="module")
def codec(model_dir: Path) -> PNCCodec:
    return PNCCodec("tiny", root=model_dir)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return procedural_split(seed=9, image_size=32, train=3, val=0, test=0)[1].images


def test_every_prefix_decodes_with_zero_fill(codec: PNCCodec, images: np.ndarray) -> None:
    for image in images:
        frame = codec.encode(image)
        assert len(frame.units) == CHANNELS and [parse_unit(u).index for u in frame.units] == [
            0,
            1,
            2,
            3,
        ]
        sym = codec.features(image)
        for n in range(CHANNELS + 1):
            got, have, rejected = codec.decode_symbols(frame.units[:n])
            assert rejected == 0 and have.tolist() == [k < n for k in range(CHANNELS)]
            assert np.array_equal(got[:n], sym[:n]) and not got[n:].any()
            decoded = codec.decode_frame(frame.units[:n])
            expected = codec.reconstruct(codec.dequantise(sym, have))
            assert np.array_equal(decoded.image, expected) and decoded.units_used == n
            assert decoded.image.shape == (32, 32, 3) and decoded.image.dtype == np.uint8


def test_units_may_arrive_in_any_order(codec: PNCCodec, images: np.ndarray) -> None:
    frame = codec.encode(images[0])
    assert np.array_equal(codec.decode(frame.units[::-1]), codec.decode(frame.units))


def test_corrupt_truncated_foreign_and_duplicate_units_are_ignored(
    codec: PNCCodec, images: np.ndarray
) -> None:
    units = codec.encode(images[1]).units
    without_2 = codec.decode(units[:2] + units[3:])
    flipped = bytearray(units[2])
    flipped[len(flipped) // 2] ^= 0xFF
    foreign = parse_unit(units[2])
    other_model = pack_unit(2, CHANNELS, foreign.model_tag ^ 1, foreign.payload)
    wrong_count = pack_unit(2, CHANNELS + 1, foreign.model_tag, foreign.payload)
    for bad in (bytes(flipped), units[2][:-3], units[2][:5], other_model, wrong_count, b""):
        result = codec.decode_frame([*units[:2], bad, *units[3:]])
        assert np.array_equal(result.image, without_2)
        assert result.units_rejected == 1 and result.units_used == CHANNELS - 1
    dup = codec.decode_frame([*units, units[0]])
    assert dup.units_rejected == 1 and np.array_equal(dup.image, codec.decode(units))


def test_stream_prefix_of_whole_units(codec: PNCCodec, images: np.ndarray) -> None:
    frame = codec.encode(images[2])
    stream = frame.stream()
    for cut in range(0, len(stream) + 1, 7):
        units, _ = split_stream(stream[:cut])
        assert units == frame.units[: len(units)]
        codec.decode(units)


def test_encode_stream_yields_first_unit_first(codec: PNCCodec, images: np.ndarray) -> None:
    stream = codec.encode_stream(images[0])
    first = next(stream)
    assert parse_unit(first).index == 0
    assert [first, *stream] == codec.encode(images[0]).units


def test_fp32_encoder_and_registry(model_dir: Path, images: np.ndarray) -> None:
    fp32 = get_codec("pnc", model="tiny", root=model_dir, int8=False)
    assert len(fp32.encode(images[0]).units) == CHANNELS


def test_bad_model_files(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        PNCCodec("absent", root=model_dir)
    for f in model_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "tiny_decoder.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        PNCCodec("tiny", root=tmp_path)


def test_shipped_pnc_round_trip() -> None:
    codec = PNCCodec()
    size = codec.image_size or 64
    image = procedural_split(seed=123, image_size=size, train=1, val=0, test=0)[1].images[0]
    frame = codec.encode(image)
    assert len(frame.units) == codec.channels
    outputs = [codec.decode(frame.units[:n]) for n in range(codec.channels + 1)]
    assert all(out.shape == image.shape for out in outputs)
    assert not np.array_equal(outputs[0], outputs[-1])
    error = [np.abs(out.astype(int) - image.astype(int)).mean() for out in outputs]
    assert error[-1] < error[0]


def test_recipe_replace_keeps_config() -> None:
    recipe = AERecipe("x", AEConfig())
    assert replace(recipe, taildrop=False).config == recipe.config


def test_a_batch_decodes_each_frame_as_alone_and_a_bad_stream_fails_alone(
    codec: PNCCodec, images: np.ndarray
) -> None:
    # The edge hands a decoder all its frames at once; what arrived of each (here every
    # prefix length) must decode exactly as that frame on its own would.
    frames = [codec.encode(image).units for image in images]
    streams = [b"".join(units[: n % (CHANNELS + 1)]) for n, units in enumerate(frames)]
    streams.append(b"\xff\x00 not a feature unit")
    decoded = codec.decode_batch(streams)
    assert len(decoded) == len(streams)
    for stream, got in zip(streams[:-1], decoded[:-1], strict=True):
        alone = codec.decode_frame(split_stream(stream)[0])
        assert not isinstance(got, CodecError)
        # The network runs on a batch: float noise of the batched kernels stays under a
        # grey level.
        diff = np.abs(got.image.astype(int) - alone.image.astype(int))
        assert diff.max() <= 1 and got.units_used == alone.units_used
    last = decoded[-1]
    assert isinstance(last, CodecError) or last.units_used == 0


def test_a_file_codec_decodes_a_batch_frame_by_frame(images: np.ndarray) -> None:
    jpeg = get_codec("jpeg", quality=50)
    files = [b"".join(jpeg.encode(image).units) for image in images]
    decoded = jpeg.decode_batch([*files, b""])
    for data, got in zip(files, decoded, strict=False):
        assert not isinstance(got, CodecError)
        assert np.array_equal(got.image, jpeg.decode([data]))
    assert len(decoded) == len(files) + 1
