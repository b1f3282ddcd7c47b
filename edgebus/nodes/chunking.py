"""How a frame's units become bus messages.

`chunk_bytes = 0` sends one codec unit per chunk; a positive value cuts the concatenated
unit stream into blocks of that many bytes (the paper's 64-byte radio blocks). Each chunk
reports how many whole units the stream holds once it has arrived, which is what the edge
can decode if the frame stops there.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebus.codecs.errors import CodecError

# Byte codecs (pjpeg, WebP, raw) have no natural unit; with chunk_bytes = 0 they still need
# blocks, or a truncated frame would be all or nothing. Of 64-512 B, 512 B gave progressive
# JPEG the best or tied accuracy in 8 of 9 cells measured (docs/pnc_offload.md).
BYTE_CODEC_BLOCK = 512


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    units_complete: int  # whole units received once this chunk (and all before it) arrived


class Chunker:
    """Incremental: feed units as the encoder yields them, take chunks as they fill."""

    def __init__(self, chunk_bytes: int) -> None:
        if chunk_bytes < 0:
            raise CodecError(f"chunk_bytes: expected 0 or more bytes, got {chunk_bytes}")
        self.chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self._unit_ends: list[int] = []  # stream offsets where units end
        self._emitted = 0  # stream bytes already cut into chunks
        self.units = 0

    def _complete_by(self, offset: int) -> int:
        return sum(1 for end in self._unit_ends if end <= offset)

    def add(self, unit: bytes) -> list[Chunk]:
        self.units += 1
        if self.chunk_bytes == 0:
            return [Chunk(unit, self.units)]
        self._buffer += unit
        self._unit_ends.append(self._emitted + len(self._buffer))
        return self._cut(final=False)

    def add_all(self, units: list[bytes]) -> list[Chunk]:
        """Several units at once: in unit mode, one chunk that holds them all."""
        if self.chunk_bytes > 0:
            return [chunk for unit in units for chunk in self.add(unit)]
        if not units:
            return []
        self.units += len(units)
        return [Chunk(b"".join(units), self.units)]

    def flush(self) -> list[Chunk]:
        """The partly filled last block, once the frame has no more units."""
        return [] if self.chunk_bytes == 0 else self._cut(final=True)

    def _cut(self, final: bool) -> list[Chunk]:
        out = []
        while len(self._buffer) >= self.chunk_bytes or (final and self._buffer):
            size = min(self.chunk_bytes, len(self._buffer))
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._emitted += size
            out.append(Chunk(data, self._complete_by(self._emitted)))
        return out


def count_chunks(unit_sizes: list[int], chunk_bytes: int) -> int:
    """How many chunks a frame of these unit sizes takes."""
    if chunk_bytes == 0:
        return len(unit_sizes)
    return -(-sum(unit_sizes) // chunk_bytes)
