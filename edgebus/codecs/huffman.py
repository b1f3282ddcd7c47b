"""Per-feature Huffman tables with numpy bit packing.

The codebook comes from `dahuffman` (only when a table is built, at training time); encoding
packs all codes of a feature map at once with numpy, and decoding walks a lookup table indexed
by the next `max_length` bits, so neither side loops over bits in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgebus.codecs.errors import ModelFileError, UnitError

MAX_CODE_LENGTH = 16  # bounds the decode lookup table to 64 Ki entries


def _check_symbols(symbols: np.ndarray, num_symbols: int) -> np.ndarray:
    sym = np.asarray(symbols).astype(np.int64)
    if sym.size and (sym.min() < 0 or sym.max() >= num_symbols):
        raise UnitError(f"Huffman encode: symbols must lie in 0..{num_symbols - 1}")
    return sym


def pack_codes(lengths: np.ndarray, codes: np.ndarray) -> list[bytes]:
    """Pack each row of (lengths, codes) into its own byte string, MSB first, zero-padded.

    Every code (at most 16 bits) starting at any bit offset fits in 3 bytes, so its value is
    aligned into a 24-bit window and the three byte lanes are summed with `bincount`: codes
    never share bits, so the sums are the bitwise ORs.
    """
    ends = np.cumsum(lengths, axis=1)
    nbytes = (ends[:, -1] + 7) // 8 if lengths.shape[1] else np.zeros(len(lengths), np.int64)
    row_start = np.concatenate([[0], np.cumsum(nbytes)[:-1]]) * 8
    start = (ends - lengths) + row_start[:, None]
    value = (codes << (24 - (start & 7) - lengths)).ravel()
    byte = (start >> 3).ravel()
    total = int(nbytes.sum())
    lanes = (
        np.bincount(byte, weights=(value >> 16) & 255, minlength=total + 2)
        + np.bincount(byte + 1, weights=(value >> 8) & 255, minlength=total + 2)
        + np.bincount(byte + 2, weights=value & 255, minlength=total + 2)
    )
    buf = lanes[:total].astype(np.uint8).tobytes()
    bounds = np.cumsum(nbytes).tolist()
    return [buf[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]


@dataclass(frozen=True)
class HuffmanTable:
    """Prefix code for symbols 0..S-1: code `codes[s]` of `lengths[s]` bits, MSB first."""

    lengths: np.ndarray
    codes: np.ndarray
    # Derived in __post_init__: the decoder's lookup of every `_width`-bit window.
    _width: int = field(init=False, repr=False, compare=False)
    _symbol_of: np.ndarray = field(init=False, repr=False, compare=False)
    _weights: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1 or lengths.size == 0 or lengths.min() < 1:
            raise ModelFileError("Huffman table: expected a 1-D array of positive code lengths")
        if lengths.max() > MAX_CODE_LENGTH:
            raise ModelFileError(f"Huffman table: code lengths above {MAX_CODE_LENGTH} bits")
        object.__setattr__(self, "lengths", lengths.astype(np.int64))
        object.__setattr__(self, "codes", np.asarray(self.codes).astype(np.int64))
        width = int(self.lengths.max())
        # Every `width`-bit window maps to the symbol whose code is its prefix; -1 marks a
        # window no symbol starts (it can only come from a corrupt payload).
        symbol_of = np.full(1 << width, -1, dtype=np.int64)
        for s, (n, c) in enumerate(zip(self.lengths.tolist(), self.codes.tolist(), strict=True)):
            lo = c << (width - n)
            symbol_of[lo : lo + (1 << (width - n))] = s
        object.__setattr__(self, "_width", width)
        object.__setattr__(self, "_symbol_of", symbol_of)
        object.__setattr__(self, "_weights", (1 << np.arange(width - 1, -1, -1)).astype(np.int64))

    @property
    def num_symbols(self) -> int:
        return int(self.lengths.size)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> HuffmanTable:
        """Build from symbol counts. Every symbol gets a code (add-one smoothing), and rare
        ones are flattened until no code is longer than MAX_CODE_LENGTH bits."""
        from dahuffman import HuffmanCodec

        freq = np.asarray(counts, dtype=np.float64) + 1.0
        while True:
            codec = HuffmanCodec.from_frequencies({s: float(f) for s, f in enumerate(freq)})
            table = codec.get_code_table()
            lengths = np.array([table[s][0] for s in range(freq.size)])
            if lengths.max() <= MAX_CODE_LENGTH:
                codes = np.array([table[s][1] for s in range(freq.size)])
                return cls(lengths, codes)
            freq = freq + freq.sum() / 2.0**12

    def expected_bits(self, counts: np.ndarray) -> float:
        return float((np.asarray(counts) * self.lengths).sum())

    def encode(self, symbols: np.ndarray) -> bytes:
        """Pack the codes of `symbols` MSB first, zero-padded to a whole byte."""
        sym = _check_symbols(symbols, self.num_symbols).reshape(1, -1)
        return pack_codes(self.lengths[sym], self.codes[sym])[0]

    def decode(self, payload: bytes, count: int) -> np.ndarray:
        """Decode exactly `count` symbols; a payload that runs out or holds an invalid code
        raises UnitError rather than returning wrong values."""
        width: int = self._width
        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8)).astype(np.int64)
        total = bits.size
        padded = np.concatenate([bits, np.zeros(width, dtype=np.int64)])
        windows = sliding_window_view(padded, width)[: total + 1] @ self._weights
        symbol_at = self._symbol_of[windows].tolist()
        length_of = self.lengths.tolist()
        out = [0] * count
        pos = 0
        for i in range(count):
            if pos >= total:
                raise UnitError(f"Huffman decode: payload ends after {i} of {count} symbols")
            s = symbol_at[pos]
            if s < 0:
                raise UnitError("Huffman decode: invalid code in payload")
            out[i] = s
            pos += length_of[s]
        if pos > total:
            raise UnitError("Huffman decode: last code runs past the payload")
        return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class HuffmanTables:
    """One table per feature channel, as the paper trains on the training set."""

    tables: tuple[HuffmanTable, ...]
    # Every table padded to one width, so a frame's channels encode in one gather.
    _lengths: np.ndarray = field(init=False, repr=False, compare=False)
    _codes: np.ndarray = field(init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.tables)

    def __getitem__(self, index: int) -> HuffmanTable:
        return self.tables[index]

    def __post_init__(self) -> None:
        width = max(t.num_symbols for t in self.tables)
        lengths = np.ones((len(self.tables), width), dtype=np.int64)
        codes = np.zeros((len(self.tables), width), dtype=np.int64)
        for i, t in enumerate(self.tables):
            lengths[i, : t.num_symbols] = t.lengths
            codes[i, : t.num_symbols] = t.codes
        object.__setattr__(self, "_lengths", lengths)
        object.__setattr__(self, "_codes", codes)

    def encode(self, symbols: np.ndarray) -> list[bytes]:
        """symbols: (channels, n); row k is coded with table k into its own payload."""
        sym = _check_symbols(symbols, self.tables[0].num_symbols)
        if sym.ndim != 2 or sym.shape[0] > len(self.tables):
            raise UnitError(f"Huffman encode: expected (<= {len(self.tables)}, n) symbols")
        rows = np.arange(sym.shape[0])[:, None]
        return pack_codes(self._lengths[rows, sym], self._codes[rows, sym])

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> HuffmanTables:
        """counts: (channels, symbols) histogram of quantised features."""
        return cls(tuple(HuffmanTable.from_counts(c) for c in np.asarray(counts)))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            lengths=np.stack([t.lengths for t in self.tables]).astype(np.uint8),
            codes=np.stack([t.codes for t in self.tables]).astype(np.uint32),
        )

    @classmethod
    def load(cls, path: Path) -> HuffmanTables:
        try:
            with np.load(path) as data:
                lengths, codes = data["lengths"], data["codes"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(
                f"Huffman tables {path}: expected an .npz with lengths and codes ({exc})"
            ) from None
        if lengths.shape != codes.shape or lengths.ndim != 2:
            raise ModelFileError(f"Huffman tables {path}: lengths and codes shapes differ")
        return cls(tuple(HuffmanTable(n, c) for n, c in zip(lengths, codes, strict=True)))
