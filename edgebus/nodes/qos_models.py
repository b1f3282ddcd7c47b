"""The QoS orchestrator's data path in the real nodes (Amaizu et al., on the bus).

A sensor camera (`codec = "qos"`, source `accelerometer`, `shapes28` or `fashion-mnist`)
follows the retained `model/switch` with a `ModelFollower` and encodes every frame with
the model in force at that frame's boundary: the pool's ECO/ECCD encoder (d float16
latents), or the raw features (CO) until the first switch and whenever the orchestrator
chooses raw (or picks a model that does not take this source's items). The
frame carries the model's id, so the edge decodes it with exactly that model
(`QosClassifier`): ECO classifies the latent with its head, ECCD decodes, then
classifies, CO runs the pool's cloud-only classifier (model "raw"). An edge that cannot get
a verified copy of a frame's model rejects the frame loudly; it never uses another one.

For ECCD models the camera also decodes its own latent and tracks the reconstruction
error (paper Eq. 2) with the drift monitor, because only the camera holds the input.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebus.broker.bus import Bus
from edgebus.clock import Clock
from edgebus.codecs.classifier import softmax
from edgebus.codecs.dense_ae import DenseAECodec, raw_encode
from edgebus.codecs.errors import ModelFileError
from edgebus.flat_data import FLAT_DIMS
from edgebus.messages import ModelBundle
from edgebus.nodes.drift_monitor import DriftMonitor
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.model_follower import RAW, Loaded, ModelFollower, UnknownModel
from edgebus.topics import Topics

log = logging.getLogger("edgebus.qos_models")

CODEC = "dense_ae"
# CO bytes per feature by data set: images as uint8, sensor windows as float16 (pool rule).
RAW_ITEM_BYTES = {"shapes28": 1, "fashion-mnist": 1, "accelerometer": 2}


def load_codec(bundle: ModelBundle) -> DenseAECodec:
    return DenseAECodec.from_bundle(bundle)


class QosEncoder:
    """A camera's model follower, raw fallback and drift monitor."""

    def __init__(
        self, bus: Bus, topics: Topics, node_id: str, coordinator_id: str, data_kind: str,
        clock: Clock, drift_threshold: float = 0.0,
    ) -> None:  # fmt: skip
        self.node_id = node_id
        self.follower: ModelFollower[DenseAECodec] = ModelFollower(
            bus, topics, node_id, coordinator_id, load_codec, clock
        )
        self.raw_item_bytes = RAW_ITEM_BYTES[data_kind]
        self.data_kind, self.item_dim = data_kind, FLAT_DIMS[data_kind]
        self._misfits: set[str] = set()  # models already reported as not taking our items
        self.drift = (
            DriftMonitor(bus, topics, drift_threshold, clock=clock) if drift_threshold else None
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()

    def coding_for(self, capture_ts: float) -> FrameCoding:
        """The model of the frame captured at `capture_ts`; a switch lands only here."""
        loaded = self.follower.at_frame_boundary(capture_ts)
        if loaded is None or loaded.model is None or not self._fits(loaded.model):
            return FrameCoding(CODEC, RAW, self._raw_units)
        return FrameCoding(CODEC, loaded.model_id, lambda x: self._model_units(loaded, x))

    def _fits(self, model: DenseAECodec) -> bool:
        """A model of another data set (a pool of 784-value images for a sensor of
        384-value windows) cannot code our items: say so once, and send raw."""
        if model.input_dim == self.item_dim:
            return True
        if model.model_id not in self._misfits:
            self._misfits.add(model.model_id)
            log.error(
                "model %s takes %d values, source %s gives %d: sending raw; point the "
                "coordinator at a pool of %s (qos_pool)", model.model_id, model.input_dim,
                self.data_kind, self.item_dim, self.data_kind,
            )  # fmt: skip
        return False

    def _raw_units(self, x: np.ndarray) -> list[bytes]:
        return [raw_encode(x, self.raw_item_bytes)]

    def _model_units(self, loaded: Loaded[DenseAECodec], x: np.ndarray) -> list[bytes]:
        model = loaded.model
        assert model is not None
        data = model.encode(x)
        if self.drift is not None and model.configuration == "ECCD" and self._loop is not None:
            x_hat = model.reconstruct(data)
            observe = self.drift.observe(self.node_id, model.model_id, x, x_hat)
            asyncio.run_coroutine_threadsafe(observe, self._loop).add_done_callback(
                _log_drift_failure
            )
        return [data]


def _log_drift_failure(observed: concurrent.futures.Future[Any]) -> None:
    # The observation runs on the event loop on the encoder thread's behalf; a failure
    # there (say, a full outgoing queue) must not vanish with the future.
    if not observed.cancelled() and observed.exception() is not None:
        log.error("drift observation failed: %s", observed.exception())


@dataclass(frozen=True, slots=True)
class QosVerdict:
    top_k: list[int]
    scores: list[float]
    model_id: str


class QosClassifier:
    """The edge side: every frame classified by the model it names, fetched when missing."""

    def __init__(
        self, bus: Bus, topics: Topics, node_id: str, coordinator_id: str, clock: Clock
    ) -> None:
        self.follower: ModelFollower[DenseAECodec] = ModelFollower(
            bus, topics, node_id, coordinator_id, load_codec, clock, fetch_raw=True
        )
        self._started = False

    async def start(self) -> None:
        # Following the switches acknowledges them and fetches each model before its
        # first frame arrives; a frame can still name a model fetched on demand.
        if not self._started:
            self._started = True
            await self.follower.start()

    async def stop(self) -> None:
        if self._started:
            await self.follower.stop()

    async def model(self, model_id: str) -> DenseAECodec:
        """The frame's model, or UnknownModel (counted by the follower) if unobtainable."""
        loaded = await self.follower.model_for(model_id)
        if loaded.model is None:
            raise UnknownModel(f"model {model_id}: no classifier for it")
        return loaded.model

    @staticmethod
    def classify(model: DenseAECodec, data: bytes, k: int = 5) -> QosVerdict | str:
        """Blocking (worker thread): top-k of one frame, or the one-line reason it failed."""
        try:
            probs = softmax(model.classify(data))
        except ModelFileError as exc:
            return str(exc)
        order = np.argsort(-probs)[:k]
        return QosVerdict([int(i) for i in order], [float(probs[i]) for i in order],
                          model.model_id)  # fmt: skip
