"""The PNC feature unit: one Huffman-coded feature map, self-delimiting and checksummed.

    offset  size  field
    0       1     format byte, 0xB1 (PNC unit, version 1)
    1       1     feature index k (0 = most important)
    2       1     number of features M of the model
    3       2     model tag (big-endian), so a unit never meets another model's decoder
    5       2     payload length N (big-endian)
    7       N     Huffman payload, MSB first, zero-padded to a byte
    7+N     4     CRC-32 (zlib) of bytes 0 .. 7+N-1, big-endian

A unit is accepted only if its length, format byte, CRC, model tag and index all check out;
anything else is dropped, so a damaged unit costs its feature, never a wrong one.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from edgebus.codecs.errors import UnitError

UNIT_FORMAT = 0xB1
_HEADER = struct.Struct(">BBBHH")
_CRC = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
OVERHEAD = _HEADER.size + _CRC.size
MAX_PAYLOAD = 0xFFFF


@dataclass(frozen=True)
class FeatureUnit:
    index: int
    channels: int
    model_tag: int
    payload: bytes


def pack_unit(index: int, channels: int, model_tag: int, payload: bytes) -> bytes:
    if not 0 <= index < channels <= 255:
        raise UnitError(f"feature unit: index {index} must lie in 0..{channels - 1} (<= 254)")
    if len(payload) > MAX_PAYLOAD:
        raise UnitError(f"feature unit: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = _HEADER.pack(UNIT_FORMAT, index, channels, model_tag & 0xFFFF, len(payload)) + payload
    return head + _CRC.pack(zlib.crc32(head))


def unit_length(data: bytes | memoryview, offset: int = 0) -> int | None:
    """Total length of the unit starting at `offset`, or None if its header is incomplete."""
    if len(data) - offset < HEADER_SIZE:
        return None
    fmt, _, _, _, n = _HEADER.unpack_from(data, offset)
    if fmt != UNIT_FORMAT:
        raise UnitError(f"feature unit at byte {offset}: format byte {fmt:#04x}, expected 0xb1")
    return OVERHEAD + n


def parse_unit(data: bytes) -> FeatureUnit:
    length = unit_length(data)
    if length is None or len(data) != length:
        raise UnitError(f"feature unit: {len(data)} bytes, header says {length}")
    (crc,) = _CRC.unpack_from(data, length - _CRC.size)
    if zlib.crc32(data[: length - _CRC.size]) != crc:
        raise UnitError("feature unit: CRC-32 mismatch")
    _, index, channels, tag, _ = _HEADER.unpack_from(data)
    if index >= channels:
        raise UnitError(f"feature unit: index {index} not below feature count {channels}")
    return FeatureUnit(index, channels, tag, bytes(data[HEADER_SIZE : length - _CRC.size]))


def split_stream(stream: bytes) -> tuple[list[bytes], int]:
    """Cut a byte stream (e.g. reassembled 64-byte blocks) into whole units.

    Returns the units and the number of bytes consumed; a trailing partial unit is left for
    when more bytes arrive. A bad format byte stops the split: nothing after it can be framed.
    """
    units: list[bytes] = []
    pos = 0
    view = memoryview(stream)
    while True:
        try:
            length = unit_length(view, pos)
        except UnitError:
            break
        if length is None or pos + length > len(stream):
            break
        units.append(bytes(view[pos : pos + length]))
        pos += length
    return units, pos
