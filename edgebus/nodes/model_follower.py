"""The node side of model switching, as one component a camera, edge or cloud embeds.

- It follows the retained `model/switch` topic. On a switch it obtains the model's bundle
  (from its cache, else from the coordinator's `model` service over request/reply),
  verifies the sha256 against the switch, loads it, then confirms
  with a `ModelSwitchAck`. A bundle that fails the check is rejected and counted; the node
  keeps its current model.
- A sender calls `at_frame_boundary(ts)` once per frame and encodes the whole frame with the
  model it returns, so a switch never lands inside a frame; the model becomes current at
  the first boundary at or after the switch's `effective_ts`.
- A receiver calls `model_for(model_id)` with the model_id the frame carries. It fetches a
  model it lacks; if it cannot get a verified copy it raises `UnknownModel`, and the frame
  is rejected loudly instead of being decoded with another model.
- Raw (CO) frames need no model to send. A receiver that classifies them
  (`fetch_raw=True`) fetches the pool's CO classifier, served as model "raw".
- A switch is followed only if it names this node's coordinator and is not stamped more
  than MAX_SWITCH_SKEW_S in the future: a forged retained switch with a far-future time
  can no longer pin a node. Switches apply in the order they arrive (the retained topic
  holds the newest), so the coordinator's restored switch undoes a forged one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import (
    Bus,
    BusClosed,
    OutgoingQueueFull,
    PublishRefused,
    RequestFailed,
    RequestTimeout,
    Subscription,
)
from edgebus.clock import Clock, RealClock
from edgebus.codecs.model_bundle import BundleMismatch, bundle_digest
from edgebus.messages import (
    MAX_SWITCH_SKEW_S,
    ModelBundle,
    ModelFetch,
    ModelSwitch,
    ModelSwitchAck,
)
from edgebus.nodes.counters import FollowerCounters
from edgebus.topics import Topics

log = logging.getLogger("edgebus.model_follower")

RAW = "raw"
M = TypeVar("M")


class UnknownModel(LookupError):
    """A frame names a model this node has no verified copy of."""


@dataclass(frozen=True, slots=True)
class Loaded(Generic[M]):
    model_id: str
    version: int
    sha256: str
    model: M | None  # None for raw (CO)


class ModelFollower(Generic[M]):
    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        node_id: str,
        coordinator_id: str,
        loader: Callable[[ModelBundle], M],
        clock: Clock | None = None,
        fetch_timeout_s: float = 5.0,
        fetch_raw: bool = False,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.node_id = node_id
        self.coordinator_id = coordinator_id
        self.loader = loader
        self.clock = clock or RealClock()
        self.fetch_timeout_s = fetch_timeout_s
        self.fetch_raw = fetch_raw
        self.counters = FollowerCounters()
        self.cache: dict[str, Loaded[M]] = {}
        self.announced: dict[str, str] = {}  # model_id -> sha256 from the switches seen
        self.current: Loaded[M] | None = None
        self._next: tuple[Loaded[M], float] | None = None
        self._last_switch: ModelSwitch | None = None
        self._fetching: dict[str, asyncio.Task[Loaded[M]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.switched = asyncio.Event()  # set after each adopted switch (tests, experiments)

    async def start(self) -> None:
        switches = await self.bus.subscribe(self.topics.model_switch(), qos=1)
        self._task = asyncio.create_task(self._follow(switches), name=f"{self.node_id}-follower")

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The long-running task start() began, for the node to supervise."""
        return (self._task,) if self._task is not None else ()

    async def stop(self) -> None:
        await cancel_and_wait((self._task, *self._fetching.values()), suppress=(Exception,))

    # -- sender side --------------------------------------------------------------------

    def at_frame_boundary(self, ts: float) -> Loaded[M] | None:
        """The model for a frame starting at `ts`: a pending switch takes effect here."""
        if self._next is not None and ts >= self._next[1]:
            self.current, self._next = self._next[0], None
            self.counters.switches_applied += 1
        return self.current

    # -- receiver side ------------------------------------------------------------------

    async def model_for(self, model_id: str) -> Loaded[M]:
        """The verified model a frame was encoded with, fetched if needed; else UnknownModel."""
        cached = self.cache.get(model_id)
        if cached is not None:
            return cached
        if model_id == RAW and not self.fetch_raw:
            return self._remember(Loaded(RAW, 0, "", None))
        try:
            return await self._obtain(model_id, self.announced.get(model_id) or None)
        except UnknownModel:
            self.counters.frames_rejected += 1
            raise

    # -- switching ----------------------------------------------------------------------

    async def _follow(self, switches: Subscription) -> None:
        async for delivery in switches:
            switch = delivery.message
            if not isinstance(switch, ModelSwitch) or switch == self._last_switch:
                continue  # the retained copy again, after a reconnect
            refusal = self._refusal(switch)
            if refusal is not None:
                self.counters.switches_refused += 1
                log.error("%s: model switch to %s ignored: %s", self.node_id, switch.model_id,
                          refusal)  # fmt: skip
                continue
            self._last_switch = switch
            if switch.sha256:
                self.announced[switch.model_id] = switch.sha256
            try:
                loaded = (
                    self._remember(Loaded(RAW, 0, "", None))
                    if switch.model_id == RAW and not self.fetch_raw
                    else await self._obtain(switch.model_id, switch.sha256 or None)
                )
            except UnknownModel as exc:
                log.error("%s: switch to %s refused: %s", self.node_id, switch.model_id, exc)
                continue
            self._next = (loaded, switch.effective_ts)
            if self.current is None:
                self.at_frame_boundary(switch.effective_ts)
            self.counters.switches += 1
            self.switched.set()
            ack = ModelSwitchAck(self.node_id, loaded.model_id, loaded.version, -1,
                                 ts=self.clock.time())  # fmt: skip
            try:
                await self.bus.publish(self.topics.model_ack(self.node_id), ack, qos=1)
            except (OutgoingQueueFull, BusClosed, PublishRefused) as exc:
                # The switch is applied; the coordinator only lacks this confirmation.
                log.warning("%s: ack of %s not published: %s", self.node_id, loaded.model_id, exc)

    def _refusal(self, switch: ModelSwitch) -> str | None:
        if switch.coordinator != self.coordinator_id:
            return (
                f"it names coordinator {switch.coordinator!r}, this node follows "
                f"{self.coordinator_id!r}"
            )
        ahead = switch.ts - self.clock.time()
        if ahead > MAX_SWITCH_SKEW_S:
            return f"it is stamped {ahead:.0f} s in the future (allowed {MAX_SWITCH_SKEW_S:g} s)"
        return None

    async def _obtain(self, model_id: str, sha256: str | None) -> Loaded[M]:
        cached = self.cache.get(model_id)
        if cached is not None and (sha256 is None or cached.sha256 == sha256):
            return cached
        # Concurrent frames of one new model share one fetch.
        task = self._fetching.get(model_id)
        if task is None:
            task = asyncio.create_task(self._fetch(model_id, sha256))
            self._fetching[model_id] = task
            task.add_done_callback(lambda _t: self._fetching.pop(model_id, None))
        return await asyncio.shield(task)

    async def _fetch(self, model_id: str, sha256: str | None) -> Loaded[M]:
        service = self.topics.request(self.coordinator_id, "model")
        try:
            bundle = await self.bus.request(service, ModelFetch(model_id), self.fetch_timeout_s)
        except (RequestTimeout, RequestFailed) as exc:
            raise UnknownModel(f"model {model_id}: fetch failed ({exc})") from None
        if not isinstance(bundle, ModelBundle) or bundle.model_id != model_id:
            raise UnknownModel(f"model {model_id}: the coordinator answered with something else")
        self.counters.fetches += 1
        try:
            # Hashing the files and building the runtime sessions take milliseconds to
            # seconds: off the loop, which keeps the node's other frames moving meanwhile.
            model = await asyncio.to_thread(self._verified_load, bundle, sha256)
        except BundleMismatch as exc:
            self.counters.checksum_rejected += 1
            raise UnknownModel(str(exc)) from None
        return self._remember(Loaded(model_id, bundle.version, bundle.sha256, model))

    def _verified_load(self, bundle: ModelBundle, sha256: str | None) -> M:
        self._verify(bundle, sha256)
        return self.loader(bundle)

    @staticmethod
    def _verify(bundle: ModelBundle, announced: str | None) -> None:
        actual = bundle_digest(bundle.files)
        for expected, source in ((bundle.sha256, "its own record"), (announced, "the switch")):
            if expected is not None and actual != expected:
                raise BundleMismatch(
                    f"model {bundle.model_id}: sha256 {actual[:16]}… differs from "
                    f"{source} ({expected[:16]}…); not loaded"
                )

    def _remember(self, loaded: Loaded[M]) -> Loaded[M]:
        self.cache[loaded.model_id] = loaded
        return loaded

    async def prefetch(self, model_ids: list[str]) -> None:
        """Hold the pool's models ahead of time, as the paper's edge does."""
        for model_id in model_ids:
            await self._obtain(model_id, self.announced.get(model_id))
