"""Options of the over-the-bus offloading experiment: the held-out test frames, the paper's
defaults, and the checks that turn a bad option into a one-line `OffloadInputError`."""

from __future__ import annotations

from collections.abc import Sequence

from edgebus.broker.link import FASHION_LINK_SCALE, TraceError, trace_from_spec
from edgebus.codecs.errors import CodecError
from edgebus.config import Settings
from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.sources import FashionImageSource, FrameSource, SyntheticSource

# The procedural test split of the shipped models (seed 0, images 13000-14999).
TEST_SEED, TEST_START, TEST_IMAGES = 0, 13_000, 2_000
DEFAULT_CODECS = ("pnc", "pjpeg", "webp0", "webp10", "webp20")
DEFAULT_PERIODS = (300, 500, 700)
DEFAULT_SCENARIOS = ("none", "light", "heavy", "switching")
# Fashion-MNIST (28 px): its own PNC model and the Fashion-MNIST classifier at the edge, and
# the link presets scaled so that their byte budgets bracket the 28 px codecs' sizes as the
# presets do at 64 px (broker/link.py says why the factor).
FASHION_CODECS = ("pnc:fashion_pnc28", "pjpeg", "webp0", "webp10", "webp20")
FASHION_SCENARIOS = tuple(f"{s}:{FASHION_LINK_SCALE:g}" for s in DEFAULT_SCENARIOS)
FASHION_SETTINGS = {
    "source": "fashion-mnist", "frame_width": 28, "frame_height": 28,
    "classifier": "fashion_strong",
}  # fmt: skip


class OffloadInputError(ValueError):
    """A bad experiment option; the message is one line."""


def parse_chunk_sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 0:
        raise OffloadInputError(f"--chunk-bytes: expected integers >= 0, got {text!r}")
    return sizes


def check_options(
    codecs: Sequence[str], periods: Sequence[int], scenarios: Sequence[str], frames: int
) -> None:
    for codec in codecs:
        try:
            parse_codec(codec)
        except CodecError as exc:
            raise OffloadInputError(f"--codecs: {exc}") from None
    for scenario in scenarios:
        try:
            if trace_from_spec(scenario) is None:
                raise OffloadInputError("--scenarios: 'off' has no link to measure")
        except TraceError as exc:
            raise OffloadInputError(f"--scenarios: {exc}") from None
    if any(p <= 0 for p in periods):
        raise OffloadInputError(f"--periods: expected positive milliseconds, got {list(periods)}")
    if not 1 <= frames <= TEST_IMAGES:
        raise OffloadInputError(f"--frames: expected 1..{TEST_IMAGES}, got {frames}")


def test_source(settings: Settings) -> FrameSource:
    """What every camera of a run plays: the held-out frames of the run's data set."""
    if settings.source == "fashion-mnist":
        return FashionImageSource(settings.frame_width)  # the published test images
    return SyntheticSource(settings.frame_width, TEST_SEED, TEST_START)
