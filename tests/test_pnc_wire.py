"""The PNC feature unit: framing, CRC, truncation and stream splitting."""

from __future__ import annotations

import pytest

from edgebus.codecs.errors import UnitError
from edgebus.codecs.pnc_wire import OVERHEAD, pack_unit, parse_unit, split_stream


def test_pack_parse() -> None:
    unit = pack_unit(3, 10, 0xBEEF, b"payload")
    assert len(unit) == OVERHEAD + 7
    parsed = parse_unit(unit)
    assert (parsed.index, parsed.channels, parsed.model_tag, parsed.payload) == (
        3,
        10,
        0xBEEF,
        b"payload",
    )


def test_every_single_byte_flip_is_caught() -> None:
    unit = pack_unit(1, 4, 7, bytes(range(40)))
    for i in range(len(unit)):
        bad = bytearray(unit)
        bad[i] ^= 0x5A
        with pytest.raises(UnitError):
            parse_unit(bytes(bad))


def test_truncated_and_extended_units_are_rejected() -> None:
    unit = pack_unit(0, 2, 1, b"abcdef")
    for n in range(len(unit)):
        with pytest.raises(UnitError):
            parse_unit(unit[:n])
    with pytest.raises(UnitError):
        parse_unit(unit + b"x")


def test_bad_index() -> None:
    with pytest.raises(UnitError, match="index"):
        pack_unit(5, 5, 0, b"")


def test_split_stream_keeps_partial_tail() -> None:
    units = [pack_unit(k, 3, 9, bytes([k]) * (k + 5)) for k in range(3)]
    stream = b"".join(units)
    for cut in range(len(stream) + 1):
        got, used = split_stream(stream[:cut])
        assert got == [u for i, u in enumerate(units) if sum(map(len, units[: i + 1])) <= cut]
        assert used == sum(map(len, got))
    got, used = split_stream(units[0] + b"\x00garbage")
    assert got == units[:1] and used == len(units[0])
