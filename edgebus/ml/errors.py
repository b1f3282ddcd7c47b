"""Errors raised by the training layer; each message names the input and what was expected."""

from __future__ import annotations


class MLError(Exception):
    """Base of every error the training layer raises on bad input."""


class DatasetError(MLError):
    """A dataset path, file or format is missing or malformed."""


class TrainingError(MLError):
    """A training or export request cannot be carried out as given."""
