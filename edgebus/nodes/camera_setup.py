"""A camera's parts, built from its Settings: the data path, the codec, the source, the
emulated link, the offload gate and, under the coordinator's policy, the schedule.

Every setting is checked here, once, when the camera is built: a bad one stops the camera
with one ConfigError line that names the input, rather than a traceback mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebus.broker.bus import Bus
from edgebus.broker.link import LinkEmulator, TraceError, trace_from_spec
from edgebus.clock import Clock
from edgebus.codecs.assets import read_card
from edgebus.codecs.base import Codec
from edgebus.codecs.classifier import card_name
from edgebus.codecs.errors import CodecError, ModelFileError
from edgebus.config import ConfigError, Settings
from edgebus.flat_data import FLAT_KINDS
from edgebus.nodes.chunking import BYTE_CODEC_BLOCK
from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.offload_gate import OffloadEveryFrame, OffloadGate, PolicyGate
from edgebus.nodes.qos_models import QosEncoder
from edgebus.nodes.sources import FrameSource, SourceError, open_source
from edgebus.nodes.stream_policy import CameraSchedule
from edgebus.topics import Topics


@dataclass(frozen=True, slots=True)
class CameraParts:
    """What a camera is made of, once its settings passed every check."""

    # The pool's models, followed frame by frame (codec qos), or one fixed codec.
    coding: QosEncoder | FrameCoding
    block_bytes: int  # 0: one codec unit per chunk, else byte blocks of this size
    source: FrameSource
    link: LinkEmulator | None  # the one uplink; None: no pacing
    gate: OffloadGate
    schedule: CameraSchedule | None  # set under the coordinator's scheduling policy

    @property
    def qos(self) -> QosEncoder | None:
        return self.coding if isinstance(self.coding, QosEncoder) else None

    def coding_for(self, capture_ts: float) -> FrameCoding:
        """How the frame captured at `capture_ts` is coded: with the pool's model in force
        at that frame's boundary, or with the fixed codec."""
        if isinstance(self.coding, QosEncoder):
            return self.coding.coding_for(capture_ts)
        return self.coding


def camera_parts(
    settings: Settings, bus: Bus, topics: Topics, clock: Clock,
    source: FrameSource | None = None, gate: OffloadGate | None = None,
) -> CameraParts:  # fmt: skip
    """The camera's parts from `settings`; `source` and `gate`, when given, replace the
    configured ones (tests and experiments bring their own). Raises ConfigError."""
    try:
        check_data_path(settings)
        coding, block_bytes = _coding(settings, bus, topics, clock)
        source = source or open_source(
            settings.source, settings.frame_width, seed=hash(settings.node_id) & 0xFFFF,
            classifier_classes=_edge_classes(settings), flat=settings.codec == "qos",
        )  # fmt: skip
        trace = trace_from_spec(settings.link)
        if gate is None:
            gate = offload_gate(settings)
        # Under the coordinator's scheduling policy the schedule picks each frame's
        # edge and capped link, and accounts for frames left unanswered.
        schedule = (
            CameraSchedule(bus, topics, settings.node_id, clock, trace, settings.peer_links)
            if settings.scheduled
            else None
        )
    except (CodecError, SourceError, TraceError, ValueError) as exc:
        # Bad codec, source, link, offload or peer-link settings (a policy file included):
        # one line naming the input, no traceback.
        raise ConfigError(f"camera {settings.node_id}: {exc}") from None
    link = LinkEmulator(trace, clock) if trace is not None else None
    return CameraParts(coding, block_bytes, source, link, gate, schedule)


def check_data_path(settings: Settings) -> None:
    """A sensor source streams to the QoS pool's models and nothing else does; Fashion-MNIST
    is both: vectors for the QoS codec, images for an image codec."""
    flat = settings.source in FLAT_KINDS
    if settings.codec == "qos" and not flat:
        raise ValueError(
            f"codec qos needs a flat source ({', '.join(FLAT_KINDS)}), got source "
            f"{settings.source!r}"
        )
    if flat and settings.codec != "qos" and settings.source not in IMAGE_AND_FLAT_KINDS:
        raise ValueError(
            f"source {settings.source} streams data vectors for the QoS pool; set codec qos"
        )
    if settings.codec == "qos" and settings.offload != "off":
        raise ValueError("offload needs an image codec; the qos codec follows the pool")


# Flat data sets that are images too: a camera with an image codec streams them as frames.
IMAGE_AND_FLAT_KINDS = ("fashion-mnist",)


def _coding(
    settings: Settings, bus: Bus, topics: Topics, clock: Clock
) -> tuple[QosEncoder | FrameCoding, int]:
    """The camera's coding and the sender's block size."""
    if settings.codec == "qos":
        qos = QosEncoder(
            bus, topics, settings.node_id, settings.coordinator_id, settings.source, clock,
            settings.drift_threshold,
        )  # fmt: skip
        return qos, 0  # one frame, one unit, one chunk
    choice = parse_codec(settings.codec)
    codec: Codec = choice.build(settings.frame_width)
    # Byte codecs are one file: the sender cuts it into blocks.
    block_bytes = settings.chunk_bytes or (0 if choice.unit_stream else BYTE_CODEC_BLOCK)
    return FrameCoding(choice.name, choice.model_id, codec.encode_stream), block_bytes


def offload_gate(settings: Settings) -> OffloadGate:
    """Every frame to the edge (`offload` off, the PNC system), or the offloading paper's
    gate: the weak model, a policy and a token bucket."""
    if settings.offload == "off":
        return OffloadEveryFrame()
    return PolicyGate(
        settings.offload,
        settings.offload_rate,
        settings.offload_bucket,
        settings.frame_period_ms / 1000.0,
        settings.offload_costs,
        settings.offload_policy,
        weak_model=settings.weak_classifier,
    )


def _edge_classes(settings: Settings) -> list[str] | None:
    """The class names of the edge's classifier, so a folder of class folders is labelled
    in its index ("espresso/" is ImageNet's 967); None for the shapes' classifier, whose
    folders are labelled in sorted order, as it was trained on them."""
    if settings.classifier == "strong":
        return None
    try:
        return [str(name) for name in read_card(card_name(settings.classifier))["classes"]]
    except (ModelFileError, KeyError, TypeError) as exc:
        raise ValueError(f"classifier {settings.classifier}: no class names ({exc})") from None
