"""Codecs by name, so nodes and experiments pick one from configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgebus.codecs.base import Codec
from edgebus.codecs.errors import CodecError


def _pnc(**params: Any) -> Codec:
    from edgebus.codecs.pnc import PNCCodec

    return PNCCodec(**params)


def _image_codec(kind: str) -> Callable[..., Codec]:
    def build(**params: Any) -> Codec:
        from edgebus.codecs import image_codecs

        cls = {
            "jpeg": image_codecs.JpegCodec,
            "pjpeg": image_codecs.ProgressiveJpegCodec,
            "webp": image_codecs.WebpCodec,
            "raw": image_codecs.RawCodec,
        }[kind]
        return cls(**params)

    return build


CODECS: dict[str, Callable[..., Codec]] = {
    "pnc": _pnc,
    "jpeg": _image_codec("jpeg"),
    "pjpeg": _image_codec("pjpeg"),
    "webp": _image_codec("webp"),
    "raw": _image_codec("raw"),
}


def codec_names() -> list[str]:
    return sorted(CODECS)


def get_codec(name: str, **params: Any) -> Codec:
    """Build a codec: `pnc` (model=, root=, int8=, threads=), `jpeg`/`pjpeg` (quality=),
    `webp` (quality=, method=), `raw`; all take image_size= except pnc, whose model fixes it."""
    if name not in CODECS:
        raise CodecError(f"codec {name!r}: expected one of {', '.join(codec_names())}")
    try:
        return CODECS[name](**params)
    except TypeError as exc:
        raise CodecError(f"codec {name!r}: bad parameters {sorted(params)} ({exc})") from None
