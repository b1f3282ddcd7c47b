"""Frame codecs behind one interface (numpy + onnxruntime + Pillow; never torch)."""

from edgebus.codecs.base import Codec, DecodedFrame, EncodedFrame
from edgebus.codecs.errors import CodecError, ImageShapeError, ModelFileError, UnitError
from edgebus.codecs.registry import codec_names, get_codec

__all__ = [
    "Codec",
    "CodecError",
    "DecodedFrame",
    "EncodedFrame",
    "ImageShapeError",
    "ModelFileError",
    "UnitError",
    "codec_names",
    "get_codec",
]
