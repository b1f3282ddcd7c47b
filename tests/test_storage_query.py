"""Query input parsing and output formats; the storage settings' validation."""

from __future__ import annotations

import csv
import io
import json

import pytest

from edgebus.config import ConfigError, load_settings
from edgebus.storage.engine import make_engine
from edgebus.storage.errors import GlobalStoreError, QueryInputError
from edgebus.storage.query import QueryResult, check_format, parse_since, render
from edgebus.storage.runtime import global_store_url, local_store_path

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, 0.0),
        ("30s", NOW - 30),
        ("15m", NOW - 900),
        ("2h", NOW - 7200),
        ("1.5d", NOW - 129_600),
        ("1700000000", 1_700_000_000.0),
        ("2026-11-23T10:00:00", 1_795_428_000.0),
        ("2026-11-23T11:00:00+01:00", 1_795_428_000.0),
    ],
)
def test_since_forms(text, expected):
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "5 weeks", "-", "10x"])
def test_bad_since_names_the_input(text):
    with pytest.raises(QueryInputError, match=f"--since '{text}': expected a duration"):
        parse_since(text, NOW)


def test_format_must_be_known():
    assert check_format("csv") == "csv"
    with pytest.raises(QueryInputError, match="--format 'yaml': expected one of table, json, csv"):
        check_format("yaml")


def rows() -> QueryResult:
    row = {
        "node": "edge-1",
        "seq": 7,
        "ts": 1_795_428_000.25,
        "camera": "cam",
        "frame_id": 3,
        "top_k": [4, 1],
        "scores": [0.7, 0.3],
        "latency_ms": 12.345,
        "offloaded": True,
        "deadline_met": False,
    }
    return QueryResult("results", [{**row, "synced": True}, {**row, "seq": 8, "synced": False}])


def test_renderings():
    parsed = json.loads(render(rows(), "json"))
    assert [r["seq"] for r in parsed] == [7, 8] and parsed[1]["synced"] is False
    table = list(csv.reader(io.StringIO(render(rows(), "csv"))))
    assert table[0][:3] == ["node", "seq", "ts"] and table[0][-1] == "synced"
    assert table[1][table[0].index("top_k")] == "[4, 1]"
    text = render(rows(), "table")
    assert "2026-11-23T10:00:00.250+00:00" in text and text.endswith("(2 rows)")


def test_storage_settings_are_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"^global_store_url: expected sqlite:///path"):
        load_settings(overrides={"global_store_url": "mysql://db"}, environ={})
    with pytest.raises(ConfigError, match="sync_batch_rows: expected a positive number"):
        load_settings(environ={"EDGEBUS_SYNC_BATCH_ROWS": "0"})
    with pytest.raises(ConfigError, match="retention_days expects float"):
        load_settings(environ={"EDGEBUS_RETENTION_DAYS": "forever"})
    settings = load_settings(overrides={"data_dir": str(tmp_path), "node_id": "n1"}, environ={})
    assert local_store_path(settings) == tmp_path / "stores" / "n1.sqlite3"
    assert global_store_url(settings) == f"sqlite:///{tmp_path / 'global.sqlite3'}"


def test_bad_store_urls_are_one_line_errors():
    with pytest.raises(GlobalStoreError, match="is not a SQLAlchemy URL"):
        make_engine("not a url")
    with pytest.raises(GlobalStoreError, match="unsupported database 'mysql'"):
        make_engine("mysql://u@h/db")
