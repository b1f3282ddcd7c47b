"""Errors of the codec layer; each message names the input and what was expected."""

from __future__ import annotations


class CodecError(ValueError):
    """Base of every error a codec raises on bad input or a bad model file."""


class ModelFileError(CodecError):
    """A model, table or card file is missing or unreadable."""


class ImageShapeError(CodecError):
    """An image does not have the shape or dtype the codec was built for."""


class UnitError(CodecError):
    """A wire unit is truncated, corrupt, or belongs to another model."""
