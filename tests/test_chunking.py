import pytest

from edgebus.codecs.errors import CodecError
from edgebus.nodes.chunking import Chunker, count_chunks
from edgebus.nodes.codec_choice import parse_codec


def test_one_unit_per_chunk():
    chunker = Chunker(0)
    chunks = chunker.add(b"aaa") + chunker.add(b"bb") + chunker.flush()
    assert [(c.data, c.units_complete) for c in chunks] == [(b"aaa", 1), (b"bb", 2)]


def test_byte_blocks_count_whole_units_only():
    chunker = Chunker(4)
    out = chunker.add(b"aaaaa")  # unit 1 spans the first block and one byte of the second
    assert [(c.data, c.units_complete) for c in out] == [(b"aaaa", 0)]
    out = chunker.add(b"bb") + chunker.flush()
    assert [(c.data, c.units_complete) for c in out] == [(b"abb", 2)]
    assert count_chunks([5, 2], 4) == 2 and count_chunks([5, 2], 0) == 2


def test_codec_specs():
    assert parse_codec("pnc").model_id == "pnc64"
    assert parse_codec("pjpeg").label == "pjpeg30"
    webp = parse_codec("webp0m0")
    assert dict(webp.params) == {"quality": 0, "method": 0} and webp.model_id == "webp-q0-m0"
    for bad in ("webp101", "pjpeg30m2", "gif"):
        with pytest.raises(CodecError, match="codec"):
            parse_codec(bad)
    with pytest.raises(CodecError, match="chunk_bytes"):
        Chunker(-1)


def test_units_ready_together_make_one_chunk():
    chunker = Chunker(0)
    chunks = chunker.add_all([b"aa", b"b", b"ccc"]) + chunker.add_all([b"d"]) + chunker.flush()
    assert [(c.data, c.units_complete) for c in chunks] == [(b"aabccc", 3), (b"d", 4)]
    assert chunker.add_all([]) == []


def test_byte_blocks_ignore_how_units_arrive():
    one_by_one, together = Chunker(4), Chunker(4)
    expected = one_by_one.add(b"aaaaa") + one_by_one.add(b"bb") + one_by_one.flush()
    got = together.add_all([b"aaaaa", b"bb"]) + together.flush()
    assert got == expected
