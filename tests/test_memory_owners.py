"""Whose memory a process holds (edgebus.bench.memory_owners): files by where they lie,
/proc smaps summed by owner, Python objects by the first frame that is not the standard
library's, and two `memory_node` reports combined."""

from __future__ import annotations

import sysconfig
import tracemalloc
from pathlib import Path

import pytest

import edgebus
from edgebus.bench.memory_owners import (
    ANON,
    EDGEBUS,
    IMPORTED,
    MB,
    OTHER,
    STDLIB,
    SYSTEM,
    owner_of_path,
    owner_of_traceback,
    running_gain,
    smaps_by_owner,
    traced_by_owner,
)

pytestmark = pytest.mark.timeout(30)

EDGEBUS_FILE = str(Path(edgebus.__file__).resolve().parent / "nodes" / "camera.py")
STDLIB_FILE = sysconfig.get_paths()["stdlib"] + "/asyncio/events.py"
SITE = "/venv/lib/python3.11/site-packages"
ORT = f"{SITE}/onnxruntime/capi/onnxruntime_pybind11_state.so"


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        (EDGEBUS_FILE, EDGEBUS),
        (STDLIB_FILE, STDLIB),
        ("<frozen posixpath>", STDLIB),
        ("<string>", STDLIB),  # exec'd code, a dataclass's __init__: whoever called it
        ("<frozen importlib._bootstrap_external>", IMPORTED),
        (f"{SITE}/sqlalchemy/orm/session.py", "sqlalchemy"),
        (f"{SITE}/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so", "numpy"),
        (f"{SITE}/numpy.libs/libscipy_openblas64_-32a4b2a6.so", "numpy"),
        (f"{SITE}/pillow.libs/libtiff.so.6", "pillow"),
        (f"{SITE}/typing_extensions.py", "typing_extensions"),
        ("/usr/lib/python3/dist-packages/yaml/__init__.py", "yaml"),
        ("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6", SYSTEM),
    ],
)
def test_a_file_belongs_to_where_it_lies(path, owner):
    assert owner_of_path(path) == owner


SMAPS = f"""\
55d0c0a00000-55d0c0a2b000 r--p 00000000 08:01 1234 /usr/bin/python3.11
Size:                172 kB
Rss:                 100 kB
55d0c1000000-55d0c1800000 rw-p 00000000 00:00 0 [heap]
Rss:                2048 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Size:               1024 kB
Rss:                 512 kB
7f0000200000-7f0000300000 r-xp 00000000 08:01 99 {ORT}
Rss:                 300 kB
Pss:                 300 kB
7f0000300000-7f0000400000 r--p 00100000 08:01 99 {ORT}
Rss:                  20 kB
7f0000500000-7f0000600000 r--p 00000000 08:01 77 {EDGEBUS_FILE} (deleted)
Rss:                   4 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Rss:                  16 kB
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0 [vdso]
Rss:                   8 kB
"""


def test_smaps_are_summed_by_owner_anonymous_apart():
    owners = smaps_by_owner(SMAPS)
    assert owners == {
        SYSTEM: (100 + 8) * 1024,  # the interpreter's binary, the vdso
        ANON: (2048 + 512 + 16) * 1024,  # heap, an unnamed mapping, the stack
        "onnxruntime": (300 + 20) * 1024,  # both mappings of one file; Pss is not Rss
        EDGEBUS: 4 * 1024,  # a mapped file, even deleted, is its owner's
    }


def test_this_process_smaps_add_up_to_its_rss():
    owners = smaps_by_owner(Path("/proc/self/smaps").read_text())
    rollup = Path("/proc/self/smaps_rollup").read_text()
    rss_kb = next(int(line.split()[1]) for line in rollup.splitlines()
                  if line.startswith("Rss:"))  # fmt: skip
    # Read a moment apart, so allow a little growth in between.
    assert abs(sum(owners.values()) / 1024 - rss_kb) < 2048
    assert owners[ANON] > 0 and owners.get("pytest", 0) == 0  # pytest is Python, not mapped


def test_an_allocation_belongs_to_the_first_frame_past_the_stdlib():
    assert owner_of_traceback([STDLIB_FILE, STDLIB_FILE, EDGEBUS_FILE]) == EDGEBUS
    sqlalchemy = f"{SITE}/sqlalchemy/engine/base.py"
    assert owner_of_traceback([STDLIB_FILE, sqlalchemy, EDGEBUS_FILE]) == "sqlalchemy"
    assert owner_of_traceback([STDLIB_FILE, STDLIB_FILE]) == STDLIB
    # Code objects a lazy import unmarshals: the importer's frame comes later, never wins.
    importlib = "<frozen importlib._bootstrap_external>"
    assert owner_of_traceback([importlib, EDGEBUS_FILE]) == IMPORTED
    # A module's own top-level code runs in its file: its objects are its own.
    assert owner_of_traceback([f"{SITE}/numpy/random/__init__.py", importlib]) == "numpy"


def _hold_in_this_test_file(count: int) -> list[bytearray]:
    return [bytearray(1024) for _ in range(count)]


def test_a_snapshot_is_summed_by_owner_innermost_frame_first():
    tracemalloc.start(16)
    try:
        held = _hold_in_this_test_file(2000)  # 2 MB made by this test's code
        owners = traced_by_owner(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    # This file is neither edgebus's nor a library's.
    assert owner_of_path(__file__) == OTHER
    mine = owners.get(OTHER, 0)
    assert mine >= 2000 * 1024, owners
    assert len(held) == 2000


def test_two_reports_combine_into_a_gain_by_owner():
    plain = {
        "mapped_before": {ANON: 50 * MB, "numpy": 10 * MB, "onnxruntime": 20 * MB},
        "mapped_after": {ANON: 56 * MB, "numpy": 13 * MB, "onnxruntime": 26 * MB, SYSTEM: MB},
        "traced": {},
    }
    traced = {"traced": {"numpy": MB // 2, EDGEBUS: MB // 4, "typer": MB}}
    gain = running_gain(plain, traced)
    assert gain.anonymous_mb == pytest.approx(6.0)
    assert gain.native_mb == pytest.approx(6.0 - 0.5 - 0.25 - 1.0)
    by_owner = {owner.owner: (owner.files_mb, owner.objects_mb) for owner in gain.owners}
    assert by_owner == {"onnxruntime": (6.0, 0.0), "numpy": (3.0, 0.5), SYSTEM: (1.0, 0.0),
                        "typer": (0.0, 1.0), EDGEBUS: (0.0, 0.25)}  # fmt: skip
    assert [owner.owner for owner in gain.owners][:2] == ["onnxruntime", "numpy"]  # largest first
