"""A real and a floor camera side by side (edgebus.bench.floor_profile): the codec's cost is
the plain figure on both sides, the rest of each side's plain CPU is spread by its
profile, and the differences add up to real − floor."""

from __future__ import annotations

import pytest

from edgebus.bench.floor_profile import CAMERA, EDGE, ProfiledNode, side_by_side
from edgebus.bench.stage_profile import MODEL, OTHER, OWN

pytestmark = pytest.mark.timeout(30)

CAPTURE, ENCODE = "capture", "encode (features, quantise, Huffman)"


def rows_by(rows, section):
    return {row["name"]: row for row in rows if row["section"] == section}


def test_the_codec_is_shared_and_the_rest_is_spread_by_each_profile():
    # cProfile made the real camera's Python look slow next to its codec: 1 s of codec,
    # 6 s of the rest. The floor: 1 s of codec, 3 s of the rest.
    real = ProfiledNode({
        (MODEL, "onnxruntime"): 0.25, (CAPTURE, "PIL"): 0.5, (ENCODE, OWN): 0.25,
        ("store writes", "sqlalchemy"): 3.0, ("chunking and link pacing", OWN): 1.0,
        (OTHER, "asyncio"): 2.0,
    }, frames=10)  # fmt: skip
    floor = ProfiledNode({
        (MODEL, "onnxruntime"): 0.5, (CAPTURE, "PIL"): 0.25, (ENCODE, OWN): 0.25,
        ("store writes", "sqlalchemy"): 2.0, (OTHER, "asyncio"): 1.0,
    }, frames=10)  # fmt: skip
    rows = side_by_side(real, real_ms=5.0, floor=floor, floor_ms=3.5, codec_ms=2.0)
    stages, code = rows_by(rows, "stage"), rows_by(rows, "code")
    # Each side's codec stages share the plain 2.0 ms by that side's own proportions.
    assert stages[MODEL]["real_ms"] == pytest.approx(0.5)
    assert stages[MODEL]["floor_ms"] == pytest.approx(1.0)
    assert sum(stages[s]["real_ms"] for s in (MODEL, CAPTURE, ENCODE)) == pytest.approx(2.0)
    # The rest: real 3.0 ms over 6 profiled s, floor 1.5 ms over 3 profiled s.
    assert stages["store writes"]["real_ms"] == pytest.approx(1.5)
    assert stages["store writes"]["floor_ms"] == pytest.approx(1.0)
    assert stages["store writes"]["edgebus_ms"] == pytest.approx(0.5)
    assert stages["chunking and link pacing"]["floor_ms"] == 0.0
    assert stages[OTHER]["edgebus_ms"] == pytest.approx(1.0 - 0.5)
    assert "sync" not in stages  # neither side spent anything there: no row
    # By whose code: the codec once, as one row, then the rest by owner.
    assert code[CAMERA.same_code_row]["real_ms"] == code[CAMERA.same_code_row]["floor_ms"] == 2.0
    assert code["sqlalchemy"]["edgebus_ms"] == pytest.approx(0.5)
    assert code[OWN]["real_ms"] == pytest.approx(0.5)  # the chunking; its encode is codec's
    assert "PIL" not in code and "onnxruntime" not in code  # only ever in the codec
    for section in (stages, code):
        parts = [row for name, row in section.items() if name != "TOTAL"]
        assert sum(r["real_ms"] for r in parts) == pytest.approx(5.0, abs=0.01)
        assert sum(r["floor_ms"] for r in parts) == pytest.approx(3.5, abs=0.01)
        assert section["TOTAL"]["edgebus_ms"] == pytest.approx(1.5)
        assert sum(r["edgebus_ms"] for r in parts) == pytest.approx(1.5, abs=0.01)


def test_an_empty_profile_spreads_nothing():
    empty = ProfiledNode({}, frames=0)
    rows = side_by_side(empty, real_ms=4.0, floor=empty, floor_ms=3.0, codec_ms=1.0)
    stages = rows_by(rows, "stage")
    assert set(stages) == {"TOTAL"} and stages["TOTAL"]["edgebus_ms"] == 1.0


def test_the_edge_shares_its_decode_and_classify_call():
    real = ProfiledNode({
        (MODEL, "onnxruntime"): 1.0, ("Huffman decode", OWN): 1.0,
        ("assembly", OWN): 1.0, ("bus receive and dispatch", "gmqtt"): 1.0,
    }, frames=10)  # fmt: skip
    floor = ProfiledNode({
        (MODEL, "onnxruntime"): 1.0, ("Huffman decode", OWN): 1.0, ("assembly", OWN): 1.0,
    }, frames=10)  # fmt: skip
    rows = side_by_side(real, real_ms=4.0, floor=floor, floor_ms=3.0, codec_ms=2.0, pairing=EDGE)
    stages, code = rows_by(rows, "stage"), rows_by(rows, "code")
    assert stages["Huffman decode"]["edgebus_ms"] == 0.0  # the same call, the same figure
    assert stages["assembly"]["real_ms"] == pytest.approx(1.0)
    assert stages["assembly"]["floor_ms"] == pytest.approx(1.0)
    assert stages["bus receive and dispatch"]["edgebus_ms"] == pytest.approx(1.0)
    assert code[EDGE.same_code_row]["real_ms"] == 2.0
    assert code[OWN]["real_ms"] == pytest.approx(1.0)  # assembly only: Huffman is the codec's
