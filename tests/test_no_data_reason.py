"""Why an edge drops a frame that holds no chunk (edge_outcomes.no_data_reason): a camera
that sent none is told so, and the reason never says "arrived" for it; a frame whose
chunks were sent but lost says how many."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgebus.messages import EndOfFrame
from edgebus.nodes.assembler import PendingFrame
from edgebus.nodes.edge_outcomes import no_data_reason
from edgebus.storage.audit import reason_class

pytestmark = pytest.mark.timeout(10)

MARKER = EndOfFrame("cam", 3, 0, 4, 0, "pnc", "m", 10.0, 10.5, incarnation=2)


def frame(end: EndOfFrame | None) -> PendingFrame:
    return PendingFrame("cam", 3, 0.0, incarnation=2, end=end)


def test_a_camera_that_sent_no_chunk_is_not_said_to_have_lost_one():
    reason = no_data_reason(frame(MARKER))
    assert reason.startswith("no chunk sent:") and "deadline" in reason
    assert "arrived" not in reason
    assert reason_class(reason) == "no chunk sent"  # counted apart from lost chunks


def test_chunks_sent_and_lost_say_how_many():
    assert no_data_reason(frame(replace(MARKER, chunks_sent=2))) == "no chunk arrived (2 sent)"
    assert reason_class("no chunk arrived (2 sent)") == "no chunk arrived"


def test_a_question_about_a_frame_says_what_the_camera_knows():
    # A camera asking about a frame (attempt >= 1) may have lost its count in a restart:
    # with 0 it does not claim the frame was never sent.
    asked = replace(MARKER, attempt=1)
    assert no_data_reason(frame(asked)) == "no chunk arrived (0 sent)"
    assert no_data_reason(frame(replace(asked, chunks_sent=1))) == "no chunk arrived (1 sent)"


def test_a_frame_without_its_marker_says_so():
    assert no_data_reason(frame(None)) == "no chunk arrived (? sent)"
