"""The topic scheme, built and parsed here and nowhere else.

Every topic is ``edgebus/v1/<site>/<kind>/...``:

=====================================  ==========================================
``frames/<camera>/<frame_id>/<chunk>``  one chunk of an encoded frame
``frames/<camera>/<frame_id>/end``      end-of-frame marker
``results/<node>``                      classification results published by a node
``dropped/<camera>``                    frames that got no result in time (FrameDropped)
``outcome/<camera>``                    what became of each of a camera's frames (FrameOutcome)
``status/<node>``                       retained; the LWT sets it to offline
``heartbeat/<node>``                    periodic liveness and counters
``qos/request``                         QoS requests to the coordinator
``model/switch``                        retained model-switch event
``model/ack/<node>``                    a node confirms it switched model
``model/drift``                         a stream's reconstruction error crossed its threshold
``sched/policy/<node>``                 retained scheduling policy for a node
``sync/<node>``                         store-sync batches from a node
``sync/<node>/ack``                     the global store's acknowledgements
``reply/<node>/<request_id>``           responses to a node's requests
``deadletter``                          payloads that failed to decode
``json/<kind>/...``                     a JSON copy of another topic, as ``sub --json`` prints it
=====================================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "edgebus"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"
END_MARKER = "end"
# The kind under which JSON copies of the other topics are republished (Topics.json_view).
JSON_VIEW_KIND = "json"


class TopicError(ValueError):
    """A topic or topic segment that does not fit the scheme."""


def check_segment(value: str, what: str) -> str:
    """A name used as one topic level: non-empty, no separators or wildcards."""
    if not isinstance(value, str) or not value:
        raise TopicError(f"{what} must be a non-empty string")
    for bad in ("/", "+", "#", "\x00"):
        if bad in value:
            raise TopicError(f"{what} {value!r} must not contain {bad!r}")
    if value.startswith("$"):
        raise TopicError(f"{what} {value!r} must not start with '$'")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic builder for one site."""

    site: str

    def __post_init__(self) -> None:
        check_segment(self.site, "site")

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.site}"

    def _node(self, kind: str, node: str) -> str:
        return f"{self.base}/{kind}/{check_segment(node, 'node id')}"

    def frame_chunk(self, camera: str, frame_id: int, chunk: int) -> str:
        return f"{self._node('frames', camera)}/{int(frame_id)}/{int(chunk)}"

    def frame_end(self, camera: str, frame_id: int) -> str:
        return f"{self._node('frames', camera)}/{int(frame_id)}/{END_MARKER}"

    def frames(self, camera: str = "+") -> str:
        """Every chunk and end marker of one camera (or of all cameras)."""
        if camera != "+":
            check_segment(camera, "camera id")
        return f"{self.base}/frames/{camera}/+/+"

    def shared_frames(self, group: str, camera: str = "+") -> str:
        """A shared subscription that spreads frames over the members of a group."""
        return f"$share/{check_segment(group, 'group')}/{self.frames(camera)}"

    def result(self, node: str) -> str:
        return self._node("results", node)

    def results(self) -> str:
        return f"{self.base}/results/+"

    def dropped(self, camera: str) -> str:
        return self._node("dropped", camera)

    def droppeds(self) -> str:
        return f"{self.base}/dropped/+"

    def outcome(self, camera: str) -> str:
        return self._node("outcome", camera)

    def outcomes(self) -> str:
        return f"{self.base}/outcome/+"

    def status(self, node: str) -> str:
        return self._node("status", node)

    def statuses(self) -> str:
        return f"{self.base}/status/+"

    def heartbeat(self, node: str) -> str:
        return self._node("heartbeat", node)

    def heartbeats(self) -> str:
        return f"{self.base}/heartbeat/+"

    def qos_request(self) -> str:
        return f"{self.base}/qos/request"

    def model_switch(self) -> str:
        return f"{self.base}/model/switch"

    def model_ack(self, node: str) -> str:
        return f"{self.base}/model/ack/{check_segment(node, 'node id')}"

    def model_acks(self) -> str:
        return f"{self.base}/model/ack/+"

    def model_drift(self) -> str:
        return f"{self.base}/model/drift"

    def sched_policy(self, node: str) -> str:
        return f"{self.base}/sched/policy/{check_segment(node, 'node id')}"

    def sched_policies(self) -> str:
        return f"{self.base}/sched/policy/+"

    def sync(self, node: str) -> str:
        return self._node("sync", node)

    def syncs(self) -> str:
        return f"{self.base}/sync/+"

    def sync_ack(self, node: str) -> str:
        return f"{self._node('sync', node)}/ack"

    def reply(self, node: str, request_id: str) -> str:
        return f"{self._node('reply', node)}/{check_segment(request_id, 'request id')}"

    def replies(self, node: str) -> str:
        return f"{self._node('reply', node)}/+"

    def any_reply(self) -> str:
        """Replies to every node: a service answers whoever asked."""
        return f"{self.base}/reply/+/+"

    def requests_to(self, node: str) -> str:
        """Every service of one node."""
        return f"{self._node('request', node)}/+"

    def any_request(self) -> str:
        return f"{self.base}/request/+/+"

    def sync_acks(self) -> str:
        return f"{self.base}/sync/+/ack"

    def request(self, node: str, service: str) -> str:
        """A node's request/reply service endpoint, e.g. its unsynced-rows query."""
        return f"{self._node('request', node)}/{check_segment(service, 'service')}"

    def deadletter(self) -> str:
        return f"{self.base}/deadletter"

    def everything(self) -> str:
        return f"{self.base}/#"

    def json_view(self, topic: str) -> str:
        """Where a JSON copy of `topic`, one of this site's, is republished:
        ``edgebus/v1/<site>/<rest>`` becomes ``edgebus/v1/<site>/json/<rest>``. Filters map
        the same way. A topic of another site, or one already a JSON view, raises."""
        if not isinstance(topic, str) or not topic.startswith(f"{self.base}/"):
            raise TopicError(f"topic {topic!r} is not under {self.base}/")
        rest = topic[len(self.base) + 1 :]
        if not rest or rest.split("/", 1)[0] == JSON_VIEW_KIND:
            raise TopicError(f"topic {topic!r} has no kind to view, or is a JSON view already")
        return f"{self.base}/{JSON_VIEW_KIND}/{rest}"

    def json_views(self) -> str:
        """Every JSON copy of this site's topics."""
        return f"{self.base}/{JSON_VIEW_KIND}/#"

    def json_viewable(self) -> dict[str, str]:
        """What the JSON view may republish, by the name `edgebus json-view --kind` takes,
        and the filter each subscribes to. Frames (binary chunks), the store's sync and
        request/reply traffic are not offered: as JSON they would only cost the broker."""
        return {
            "results": self.results(),
            "dropped": self.droppeds(),
            "outcome": self.outcomes(),
            "status": self.statuses(),
            "heartbeat": self.heartbeats(),
            "model-switch": self.model_switch(),
            "model-ack": self.model_acks(),
            "model-drift": self.model_drift(),
            "qos-request": self.qos_request(),
            "sched-policy": self.sched_policies(),
            "deadletter": self.deadletter(),
        }


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    site: str
    kind: str
    node: str | None
    rest: tuple[str, ...]

    @property
    def frame_id(self) -> int:
        if self.kind != "frames" or len(self.rest) != 2:
            raise TopicError(f"not a frame topic: kind={self.kind!r} rest={self.rest!r}")
        try:
            return int(self.rest[0])
        except ValueError:
            raise TopicError(f"frame id {self.rest[0]!r} is not an integer") from None

    @property
    def is_end_marker(self) -> bool:
        return self.kind == "frames" and len(self.rest) == 2 and self.rest[1] == END_MARKER


_NODELESS_KINDS = {"qos", "model", "deadletter", "sched"}


def parse(topic: str) -> ParsedTopic:
    """Split an edgebus topic into its parts; anything off-scheme raises TopicError."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or parts[1] != VERSION:
        raise TopicError(f"topic {topic!r} does not start with {PREFIX}/<site>/<kind>")
    site, kind, tail = parts[2], parts[3], parts[4:]
    if not site or not kind:
        raise TopicError(f"topic {topic!r} has an empty site or kind")
    if kind == "sched" and len(tail) == 2 and tail[0] == "policy":
        return ParsedTopic(site, kind, tail[1], ("policy",))
    if kind in _NODELESS_KINDS:
        return ParsedTopic(site, kind, None, tuple(tail))
    if not tail or not tail[0]:
        raise TopicError(f"topic {topic!r} lacks the node level after {kind!r}")
    return ParsedTopic(site, kind, tail[0], tuple(tail[1:]))
