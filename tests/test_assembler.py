import dataclasses

from edgebus.messages import EndOfFrame, FrameChunk
from edgebus.nodes.assembler import FrameAssembler
from edgebus.nodes.frame_ledger import FrameLedger


def chunk(frame, index, data=b"ab", camera="c"):
    return FrameChunk(camera, frame, index, "raw", "m", 1.0, data)


def end(frame, sent, camera="c"):
    return EndOfFrame(camera, frame, sent, 4, sent * 2, "raw", "m", 1.0, 1.5)


def test_end_marker_finishes_frame_with_prefix():
    assembler = FrameAssembler()
    assert assembler.add_chunk(chunk(0, 0), 0) == []
    assert assembler.add_chunk(chunk(0, 2), 0) == []
    (frame,) = assembler.end(end(0, 3), 0)
    assert frame.ordered_chunks() == [b"ab"]  # the gap at index 1 ends the usable prefix
    assert frame.bytes_received == 4


def test_duplicates_and_late_chunks_are_ignored():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(0, 0), 0)
    assembler.add_chunk(chunk(0, 0), 0)
    assert assembler.stats.duplicates == 1
    assembler.end(end(0, 1), 0)
    assert assembler.add_chunk(chunk(0, 1), 0) == []
    assert assembler.end(end(0, 1), 0) == []
    assert assembler.stats.late == 2


def test_the_chunk_an_end_marker_carries_is_the_frames_last():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(0, 0, b"first"), 0)
    marker = dataclasses.replace(end(0, 2), last_chunk=b"last")
    (frame,) = assembler.end(marker, 0)
    assert frame.ordered_chunks() == [b"first", b"last"]
    (alone,) = assembler.end(dataclasses.replace(end(1, 1), last_chunk=b"only"), 0)
    assert alone.ordered_chunks() == [b"only"]


def test_a_carried_chunk_neither_replaces_one_that_came_alone_nor_counts_without_a_place():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(0, 0, b"came first"), 0)
    (frame,) = assembler.end(dataclasses.replace(end(0, 1), last_chunk=b"other"), 0)
    assert frame.ordered_chunks() == [b"came first"]
    # chunks_sent 0 leaves the carried chunk no index: a hostile marker, decided empty.
    (empty,) = assembler.end(dataclasses.replace(end(1, 0), last_chunk=b"where"), 0)
    assert empty.ordered_chunks() == [] and empty.bytes_received == 0


def test_completion_after_marker_arrives_out_of_order():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(1, 1), 0)
    finished = assembler.end(end(1, 2), 0)
    assert [f.frame_id for f in finished] == [1]


def test_lost_end_marker_expires_after_grace():
    assembler = FrameAssembler(grace_s=1.0)
    assembler.add_chunk(chunk(5, 0), 10.0)
    assert assembler.expire(10.5) == []
    (frame,) = assembler.expire(11.0)
    assert frame.frame_id == 5 and frame.end is None
    assert assembler.stats.expired == 1


def test_newer_frame_decides_older_ones_first():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(3, 0), 0)
    assembler.add_chunk(chunk(4, 0), 0)
    finished = assembler.end(end(4, 1), 0)
    assert [f.frame_id for f in finished] == [3, 4]
    assert assembler.pending == 0


def test_cameras_are_independent():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(9, 0, camera="a"), 0)
    assembler.end(end(9, 1, camera="a"), 0)
    assert assembler.add_chunk(chunk(2, 0, camera="b"), 0) == []
    assert assembler.pending == 1


def test_out_of_order_chunks_are_used_in_index_order():
    assembler = FrameAssembler()
    for index, data in ((2, b"c"), (0, b"a"), (1, b"b")):
        assert assembler.add_chunk(chunk(7, index, data), 0) == []
    (frame,) = assembler.end(end(7, 3), 0)
    assert frame.ordered_chunks() == [b"a", b"b", b"c"]


def test_late_chunk_of_an_older_frame_is_discarded():
    assembler = FrameAssembler()
    assembler.add_chunk(chunk(1, 0), 0)
    assembler.end(end(2, 0), 0)  # frame 2 decided: frame 1 lost its marker and is decided too
    assert assembler.add_chunk(chunk(1, 1), 0) == []
    assert assembler.add_chunk(chunk(2, 0), 0) == []
    assert assembler.stats.late == 2 and assembler.pending == 0


def test_next_expiry_is_when_the_oldest_frame_runs_out_of_grace():
    # The edge sleeps until then instead of polling; none assembling: nothing is due.
    assembler = FrameAssembler(grace_s=1.0)
    assert assembler.next_expiry() is None
    assembler.add_chunk(chunk(0, 0, camera="a"), 5.0)
    assembler.add_chunk(chunk(0, 0, camera="b"), 5.5)
    assert assembler.next_expiry() == 6.0
    assembler.end(end(0, 1, camera="a"), 5.6)
    assert assembler.next_expiry() == 6.5
    assert [f.camera for f in assembler.expire(6.5)] == ["b"]
    assert assembler.next_expiry() is None


def test_frames_being_decided_are_in_the_ledger_it_was_given_even_an_empty_one():
    """The edge checks its ledger before it screens a frame's message: a frame waiting for
    the classifier must be there, or a late question about it is refused while the frame
    is still decided, and the camera records it a second time."""
    ledger = FrameLedger()  # nothing decided yet: empty
    assembler = FrameAssembler(ledger=ledger)
    assert assembler.ledger is ledger
    (frame,) = assembler.end(end(0, 1), 0)
    assert ledger.is_deciding(frame.key)
    ledger.decide(frame.key, "result", "", 1.0)
    assert not ledger.is_deciding(frame.key) and ledger.lookup(frame.key) is not None
