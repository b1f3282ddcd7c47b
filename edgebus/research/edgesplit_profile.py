"""The measured per-layer profile EdgeSplit plans from, read without torch.

`edgebus.ml.layer_profile` writes it (one batch, one thread of the machine it ran on);
`edgebus/assets/layer_profiles.json` is the copy measured for this repository.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_FORMAT = 1
_LAYER_FIELDS = ("forward_s", "backward_s", "output_bytes", "param_bytes", "saved_bytes")


class EdgeSplitError(ValueError):
    """Bad input to EdgeSplit or SplitPipe; the message names the input and what was expected."""


class ProfileError(EdgeSplitError):
    """A layer-profile file is missing or malformed."""


def shipped_profile_path() -> Path:
    return Path(str(resources.files("edgebus") / "assets" / "layer_profiles.json"))


@dataclass(frozen=True)
class LayerCost:
    """One split-able layer, for one batch: seconds on the profiling CPU, sizes in bytes."""

    name: str
    forward_s: float
    backward_s: float
    output_bytes: int
    param_bytes: int
    saved_bytes: int


@dataclass(frozen=True)
class ModelProfile:
    """A model as a chain of layers; a split point j (1-based) keeps layers 1..j on the device."""

    name: str
    batch: int
    layers: tuple[LayerCost, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def forward_s(self) -> np.ndarray:
        return np.array([layer.forward_s for layer in self.layers])

    def backward_s(self) -> np.ndarray:
        return np.array([layer.backward_s for layer in self.layers])

    def output_bytes(self) -> np.ndarray:
        return np.array([layer.output_bytes for layer in self.layers], dtype=float)

    def param_bytes(self) -> np.ndarray:
        return np.array([layer.param_bytes for layer in self.layers], dtype=float)

    def saved_bytes(self) -> np.ndarray:
        return np.array([layer.saved_bytes for layer in self.layers], dtype=float)


@dataclass(frozen=True)
class ProfileSet:
    """Every model of one profile file and how it was measured."""

    batch: int
    torch_version: str
    date: str
    models: dict[str, ModelProfile]

    def model(self, name: str) -> ModelProfile:
        if name not in self.models:
            raise ProfileError(f"profile model {name!r}: expected one of {sorted(self.models)}")
        return self.models[name]


def _layer(model: str, index: int, raw: Any) -> LayerCost:
    where = f"layer profile {model} layer {index + 1}"
    if not isinstance(raw, dict) or any(key not in raw for key in ("name", *_LAYER_FIELDS)):
        raise ProfileError(f"{where}: expected an object with name, {', '.join(_LAYER_FIELDS)}")
    values = {key: raw[key] for key in _LAYER_FIELDS}
    for key, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ProfileError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
    return LayerCost(
        name=str(raw["name"]),
        forward_s=float(values["forward_s"]),
        backward_s=float(values["backward_s"]),
        output_bytes=int(values["output_bytes"]),
        param_bytes=int(values["param_bytes"]),
        saved_bytes=int(values["saved_bytes"]),
    )


def parse_profiles(document: Any, source: str = "layer profile") -> ProfileSet:
    """Validate a decoded profile document (see `edgebus.ml.layer_profile`)."""
    if not isinstance(document, dict) or document.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"{source}: expected a JSON object with format {PROFILE_FORMAT}")
    batch = document.get("batch")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ProfileError(f"{source}: batch must be an integer >= 1, got {batch!r}")
    raw_models = document.get("models")
    if not isinstance(raw_models, dict) or not raw_models:
        raise ProfileError(f"{source}: expected a non-empty 'models' object")
    models: dict[str, ModelProfile] = {}
    for name, raw in raw_models.items():
        layers = raw.get("layers") if isinstance(raw, dict) else None
        if not isinstance(layers, list) or len(layers) < 2:
            raise ProfileError(f"{source}: model {name!r} needs a 'layers' list of >= 2 layers")
        costs = tuple(_layer(name, index, layer) for index, layer in enumerate(layers))
        if sum(cost.param_bytes for cost in costs) == 0:
            raise ProfileError(f"{source}: model {name!r} has no parameters")
        models[name] = ModelProfile(name=name, batch=batch, layers=costs)
    return ProfileSet(
        batch=batch,
        torch_version=str(document.get("torch", "unknown")),
        date=str(document.get("date", "unknown")),
        models=models,
    )


def load_profiles(path: Path | None = None) -> ProfileSet:
    """Read a profile JSON file (the shipped one by default)."""
    path = shipped_profile_path() if path is None else Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ProfileError(f"layer profile {path}: file not found") from None
    except OSError as error:
        raise ProfileError(f"layer profile {path}: cannot read ({error.strerror})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(f"layer profile {path}: not valid JSON ({error.msg})") from None
    return parse_profiles(document, source=f"layer profile {path}")
