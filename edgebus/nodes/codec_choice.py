"""Codec specs as cameras are configured (`pnc`, `pjpeg30`, `webp20`, `webp0m6`, `raw`) and
the codec objects both ends build from them.

The camera puts the codec name and a model id on every chunk; the edge rebuilds a decoder
from those two strings alone, so any edge can decode any camera's frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgebus.codecs import get_codec
from edgebus.codecs.base import Codec
from edgebus.codecs.errors import CodecError

PJPEG_QUALITY = 30  # the paper's progressive JPEG setting
WEBP_QUALITY = 20
# Most effort, smallest files: the strongest fixed-quality WebP, so PNC meets no straw man.
WEBP_METHOD = 6
JPEG_QUALITY = 75
_SPEC = re.compile(r"^(?P<kind>pjpeg|jpeg|webp)(?P<q>\d{0,3})(m(?P<m>[0-6]))?$")


@dataclass(frozen=True)
class CodecChoice:
    """A codec by name plus its parameters; `model_id` names it on the wire."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def model_id(self) -> str:
        if self.name == "pnc":
            return str(dict(self.params).get("model", "pnc64"))
        if not self.params:
            return self.name
        return self.name + "-" + "-".join(f"{k[0]}{v}" for k, v in self.params)

    @property
    def label(self) -> str:
        """The short name experiments print: pnc, pjpeg30, webp20, raw."""
        params = dict(self.params)
        if self.name in ("pjpeg", "jpeg", "webp"):
            return f"{self.name}{params['quality']}"
        return self.name

    @property
    def unit_stream(self) -> bool:
        """True when the codec's units are meaningful on their own (PNC features); byte
        codecs are one file, cut into blocks by the sender."""
        return self.name == "pnc"

    def build(self, image_size: int) -> Codec:
        params = dict(self.params)
        if self.name == "pnc":
            return get_codec("pnc", **params)
        # One unit = the whole file; the sender decides the block size on the wire.
        block = {} if self.name == "raw" else {"block_size": None}
        return get_codec(self.name, image_size=image_size, **params, **block)


def parse_codec(spec: str) -> CodecChoice:
    """`pnc[:model]`, `pjpeg[Q]`, `jpeg[Q]`, `webp[Q][mM]` or `raw`; raises CodecError."""
    if spec == "raw":
        return CodecChoice("raw")
    if spec == "pnc" or spec.startswith("pnc:"):
        model = spec.partition(":")[2] or "pnc64"
        return CodecChoice("pnc", (("model", model),))
    match = _SPEC.match(spec)
    if match is None:
        expected = "pnc[:model], pjpeg[Q], jpeg[Q], webp[Q][mM] or raw"
        raise CodecError(f"codec {spec!r}: expected {expected}")
    kind, q, m = match["kind"], match["q"], match["m"]
    default_q = {"pjpeg": PJPEG_QUALITY, "jpeg": JPEG_QUALITY, "webp": WEBP_QUALITY}[kind]
    quality = int(q) if q else default_q
    if quality > 100:
        raise CodecError(f"codec {spec!r}: quality must be 0..100")
    if kind == "webp":
        method = int(m) if m else WEBP_METHOD
        return CodecChoice("webp", (("quality", quality), ("method", method)))
    if m:
        raise CodecError(f"codec {spec!r}: only webp takes an effort method (mM)")
    return CodecChoice(kind, (("quality", quality),))


def decoder_for(codec: str, model_id: str, image_size: int) -> Codec:
    """The decoder for chunks tagged (codec, model_id); quality does not matter to decode."""
    if codec == "pnc":
        return get_codec("pnc", model=model_id, load_encoder=False)
    if codec in ("pjpeg", "jpeg", "webp", "raw"):
        return get_codec(codec, image_size=image_size)
    raise CodecError(f"chunks name codec {codec!r}, which this edge cannot decode")
