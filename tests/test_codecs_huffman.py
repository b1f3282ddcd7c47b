"""Per-feature Huffman tables: round trips, packing, corrupt payloads, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebus.codecs.errors import ModelFileError, UnitError
from edgebus.codecs.huffman import MAX_CODE_LENGTH, HuffmanTable, HuffmanTables


def _counts(rng: np.random.Generator, p: float) -> np.ndarray:
    return np.bincount(np.clip(rng.geometric(p, 20000) - 1, 0, 63), minlength=64)


def _reference_bits(table: HuffmanTable, symbols: np.ndarray) -> str:
    return "".join(
        format(int(table.codes[s]), f"0{int(table.lengths[s])}b") for s in symbols.tolist()
    )


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9])
def test_round_trip_and_bit_layout(p: float) -> None:
    rng = np.random.default_rng(0)
    table = HuffmanTable.from_counts(_counts(rng, p))
    assert table.lengths.max() <= MAX_CODE_LENGTH and table.num_symbols == 64
    symbols = rng.integers(0, 64, size=300)
    payload = table.encode(symbols)
    bits = _reference_bits(table, symbols)
    assert len(payload) == (len(bits) + 7) // 8
    expected = int(bits.ljust(len(payload) * 8, "0"), 2).to_bytes(len(payload), "big")
    assert payload == expected
    assert np.array_equal(table.decode(payload, symbols.size), symbols)


def test_skewed_counts_are_length_limited() -> None:
    counts = np.array([2**40 // (2**i) for i in range(64)], dtype=np.float64)
    table = HuffmanTable.from_counts(counts)
    assert table.lengths.max() <= MAX_CODE_LENGTH
    symbols = np.arange(64)
    assert np.array_equal(table.decode(table.encode(symbols), 64), symbols)


def test_frequent_symbols_get_short_codes() -> None:
    counts = np.ones(64)
    counts[7] = 1e6
    table = HuffmanTable.from_counts(counts)
    assert table.lengths[7] == table.lengths.min() == 1


def test_tables_encode_rows_independently() -> None:
    rng = np.random.default_rng(1)
    tables = HuffmanTables.from_counts(np.stack([_counts(rng, p) for p in (0.1, 0.5, 0.8)]))
    symbols = rng.integers(0, 64, size=(3, 256))
    payloads = tables.encode(symbols)
    for k in range(3):
        assert payloads[k] == tables[k].encode(symbols[k])
        assert np.array_equal(tables[k].decode(payloads[k], 256), symbols[k])
    assert tables.encode(symbols[:1]) == payloads[:1]


def test_short_or_invalid_payload_raises() -> None:
    rng = np.random.default_rng(2)
    table = HuffmanTable.from_counts(_counts(rng, 0.3))
    payload = table.encode(rng.integers(0, 64, size=100))
    with pytest.raises(UnitError):
        table.decode(payload[: len(payload) // 2], 100)
    with pytest.raises(UnitError):
        table.decode(b"", 1)
    with pytest.raises(UnitError, match="symbols must lie"):
        table.encode(np.array([64]))


def test_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tables = HuffmanTables.from_counts(np.stack([_counts(rng, 0.2), _counts(rng, 0.6)]))
    tables.save(tmp_path / "t.npz")
    again = HuffmanTables.load(tmp_path / "t.npz")
    for a, b in zip(tables.tables, again.tables, strict=True):
        assert np.array_equal(a.lengths, b.lengths) and np.array_equal(a.codes, b.codes)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ModelFileError, match=r"bad\.npz"):
        HuffmanTables.load(tmp_path / "bad.npz")
