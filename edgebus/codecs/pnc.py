"""Progressive neural compression at run time: encoder -> 6-bit features -> per-feature Huffman
-> units in importance order; decoder zero-fills missing features.

A model is a card `<name>.json` next to its encoder (int8 and fp32), decoder and Huffman tables.
Fixed-rate autoencoders use the same files and the same codec; only their training differs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebus.codecs.assets import asset_path, assets_dir, read_card
from edgebus.codecs.base import Codec, DecodedFrame
from edgebus.codecs.errors import CodecError, ModelFileError, UnitError
from edgebus.codecs.huffman import HuffmanTables
from edgebus.codecs.inference import DEFAULT_THREADS, InferenceSession
from edgebus.codecs.pnc_wire import pack_unit, parse_unit, split_stream

DEFAULT_MODEL = "pnc64"


@dataclass(frozen=True)
class PNCSpec:
    """What a card says about a model's shape and files."""

    name: str
    image_size: int
    channels: int
    feature_size: int
    levels: int
    model_tag: int
    encoder: Path
    encoder_int8: Path | None
    decoder: Path
    tables: Path

    @classmethod
    def from_card(cls, card: dict[str, Any], root: Path) -> PNCSpec:
        try:
            files = card["files"]
            cfg = card["config"]
            int8 = files.get("encoder_int8")
            return cls(
                name=str(card["name"]),
                image_size=int(cfg["image_size"]),
                channels=int(cfg["channels"]),
                feature_size=int(cfg["image_size"]) // int(cfg["stride"]),
                levels=int(card["levels"]),
                model_tag=int(card["model_tag"]),
                encoder=asset_path(files["encoder"], root),
                encoder_int8=asset_path(int8, root) if int8 else None,
                decoder=asset_path(files["decoder"], root),
                tables=asset_path(files["huffman"], root),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"PNC card {card.get('name', '?')}: missing field {exc}") from None


class PNCCodec(Codec):
    """Units are whole Huffman-coded features, most important first (see `pnc_wire`)."""

    name = "pnc"
    progressive = True
    unit_stream = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        root: str | Path | None = None,
        int8: bool = True,
        threads: int = DEFAULT_THREADS,
        load_encoder: bool = True,
        load_decoder: bool = True,
    ) -> None:
        base = Path(root) if root is not None else assets_dir()
        card_name = model if model.endswith(".json") else f"{model}.json"
        self.card = read_card(card_name, base)
        self.spec = PNCSpec.from_card(self.card, asset_path(card_name, base).parent)
        super().__init__(self.spec.image_size)
        self.tables = HuffmanTables.load(self.spec.tables)
        if len(self.tables) != self.spec.channels:
            raise ModelFileError(
                f"Huffman tables {self.spec.tables}: {len(self.tables)} tables for "
                f"{self.spec.channels} features"
            )
        enc_path = self.spec.encoder_int8 if int8 and self.spec.encoder_int8 else self.spec.encoder
        self._encoder = InferenceSession(enc_path, threads) if load_encoder else None
        self._decoder = InferenceSession(self.spec.decoder, threads) if load_decoder else None

    @property
    def channels(self) -> int:
        return self.spec.channels

    # --- encoding ------------------------------------------------------------------------

    def features(self, image: np.ndarray) -> np.ndarray:
        """Quantised features (M, h, w) as symbols 0..levels-1."""
        if self._encoder is None:
            raise ModelFileError(f"PNC model {self.spec.name}: loaded without its encoder")
        x = self.check_image(image).transpose(2, 0, 1)[None].astype(np.float32) * (1 / 255)
        z = self._encoder.run(x)[0]
        return np.rint(np.clip(z, 0.0, 1.0) * (self.spec.levels - 1)).astype(np.int64)

    def _unit(self, index: int, payload: bytes) -> bytes:
        return pack_unit(index, self.spec.channels, self.spec.model_tag, payload)

    def _encode_units(self, image: np.ndarray) -> list[bytes]:
        sym = self.features(image)
        payloads = self.tables.encode(sym.reshape(self.spec.channels, -1))
        return [self._unit(k, p) for k, p in enumerate(payloads)]

    def encode_stream(self, image: np.ndarray) -> Iterator[bytes]:
        """The first feature is coded and handed out before the others are, so a sender can
        start while the rest is still being entropy coded (paper Sec. V-G)."""
        sym = self.features(image).reshape(self.spec.channels, -1)
        yield self._unit(0, self.tables[0].encode(sym[0]))
        rest = self.tables.encode(sym)[1:] if self.spec.channels > 1 else []
        for k, payload in enumerate(rest, start=1):
            yield self._unit(k, payload)

    # --- decoding ------------------------------------------------------------------------

    def decode_symbols(self, units: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, int]:
        """Symbols (M, h, w) with a mask of the features that arrived intact, and the count of
        units rejected (corrupt, truncated, foreign or duplicate)."""
        m, side = self.spec.channels, self.spec.feature_size
        sym = np.zeros((m, side, side), dtype=np.int64)
        have = np.zeros(m, dtype=bool)
        rejected = 0
        for data in units:
            try:
                unit = parse_unit(data)
                if unit.channels != m or unit.model_tag != self.spec.model_tag:
                    raise UnitError("feature unit from another model")
                if have[unit.index]:
                    raise UnitError("duplicate feature unit")
                values = self.tables[unit.index].decode(unit.payload, side * side)
            except UnitError:
                rejected += 1
                continue
            sym[unit.index] = values.reshape(side, side)
            have[unit.index] = True
        return sym, have, rejected

    def dequantise(self, sym: np.ndarray, have: np.ndarray) -> np.ndarray:
        """Float features with every missing feature zero-filled, as the paper's decoder."""
        z = sym.astype(np.float32) * (1.0 / (self.spec.levels - 1))
        return z * have.astype(np.float32).reshape(-1, 1, 1)

    def reconstruct(self, z: np.ndarray) -> np.ndarray:
        """Decoder on features (M, h, w) or a batch (N, M, h, w) -> uint8 image(s) HxWx3."""
        if self._decoder is None:
            raise ModelFileError(f"PNC model {self.spec.name}: loaded without its decoder")
        batch = z[None] if z.ndim == 3 else z
        out = self._decoder.run(batch.astype(np.float32))
        images = np.rint(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return images[0] if z.ndim == 3 else images

    def decode_batch(self, streams: Sequence[bytes]) -> list[DecodedFrame | CodecError]:
        """Each stream cut into its feature units; the features of every frame then go
        through the decoder network as one batch, which costs little more than one frame
        (cameras that capture in step deliver their frames together)."""
        start = time.perf_counter()
        out: list[DecodedFrame | CodecError] = []
        parsed: list[tuple[int, np.ndarray, int, int]] = []  # index, features, used, rejected
        for index, stream in enumerate(streams):
            try:
                units, _ = split_stream(stream)
                sym, have, rejected = self.decode_symbols(units)
            except CodecError as exc:
                out.append(exc)
                continue
            out.append(CodecError("not decoded"))  # replaced below
            parsed.append((index, self.dequantise(sym, have), int(have.sum()), rejected))
        if parsed:
            images = self.reconstruct(np.stack([z for _, z, _, _ in parsed]))
            seconds = (time.perf_counter() - start) / len(parsed)
            for (index, _, used, rejected), image in zip(parsed, images, strict=True):
                out[index] = DecodedFrame(image, seconds, used, rejected)
        return out

    def _decode_units(self, units: list[bytes]) -> tuple[np.ndarray, int, int]:
        sym, have, rejected = self.decode_symbols(units)
        return self.reconstruct(self.dequantise(sym, have)), int(have.sum()), rejected
