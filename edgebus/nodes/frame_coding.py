"""How a camera codes one frame, whatever the codec: named on the frame's chunks, run in
the camera's encoder thread. Fixed codecs (PNC, WebP, progressive JPEG, raw) give one for
the whole run; the QoS pool's models (qos_models.py) give the one in force at each frame."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class FrameCoding:
    """The codec and model named on a frame's chunks, and the coder that turns the frame's
    data into units."""

    codec: str
    model_id: str
    units: Callable[[np.ndarray], Iterable[bytes]]
