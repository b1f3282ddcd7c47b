"""Actors on the bus: one class per data-plane role (the coordinator lives in coordinator/).

The classes are imported on first use: importing one role must not load the others'
models and policies. The lifecycle they share is edgebus/actor/.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgebus.nodes.camera import CameraNode
    from edgebus.nodes.cloud import CloudNode
    from edgebus.nodes.edge import EdgeNode

__all__ = ["CameraNode", "CloudNode", "EdgeNode"]

_HOMES = {
    "CameraNode": "edgebus.nodes.camera",
    "CloudNode": "edgebus.nodes.cloud",
    "EdgeNode": "edgebus.nodes.edge",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgebus.nodes' has no attribute {name!r}")
    return getattr(import_module(home), name)
