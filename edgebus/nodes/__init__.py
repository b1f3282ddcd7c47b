"""Actors on the bus: one class per data-plane role (the coordinator lives in coordinator/)."""

from __future__ import annotations

from edgebus.nodes.base import Node
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.cloud import CloudNode
from edgebus.nodes.edge import EdgeNode

__all__ = ["CameraNode", "CloudNode", "EdgeNode", "Node"]
