"""The memory steps of benchmarks/bench_memory.py, measured for real in fresh interpreters:
readings come back, cumulative peaks never shrink, each step loads only what it names (so
its increment is its own), and a broken or stuck step ends in an error naming it."""

from __future__ import annotations

import itertools
import time

import pytest

from edgebus.bench.memory_steps import (
    ALONE,
    CAMERA_STEPS,
    EDGEBUS,
    LIBRARY,
    MemoryStepError,
    Step,
    cumulative_code,
    measure,
    measure_alone,
    measure_cumulative,
    parse_reading,
)

pytestmark = pytest.mark.timeout(90)

# What each cumulative step must not have loaded yet: a later step's library showing up
# early would put its memory on the wrong step.
NOT_YET = {
    "+ numpy": ("onnxruntime", "sqlalchemy", "gmqtt"),
    "+ onnxruntime": ("sqlalchemy", "gmqtt", "edgebus.codecs.pnc"),
    "+ edgebus: codec modules": ("sqlalchemy", "gmqtt", "edgebus.storage.local"),
    "+ camera models (onnxruntime sessions)": ("sqlalchemy", "gmqtt", "edgebus.broker.bus"),
    "+ sqlalchemy (orm, SQLite dialect)": ("edgebus.storage.local", "gmqtt"),
    "+ edgebus: local store": ("gmqtt", "msgpack", "edgebus.nodes.camera"),
    "+ gmqtt, msgpack": ("edgebus.broker.bus", "edgebus.cli"),
    "+ edgebus: bus": ("typer", "edgebus.cli", "edgebus.nodes.camera"),
    "+ typer, rich, PIL, psutil": ("edgebus.cli", "edgebus.nodes.camera"),
    "+ edgebus: CLI and camera node": ("pydantic",),
}
# What each step must have loaded by its end.
LOADED = {
    "+ camera models (onnxruntime sessions)": ("edgebus.codecs.inference",),
    "+ sqlalchemy (orm, SQLite dialect)": ("sqlalchemy.orm", "sqlalchemy.dialects.sqlite"),
    "+ edgebus: local store": ("edgebus.storage.local",),
    "+ edgebus: bus": ("edgebus.broker.transport_gmqtt",),
    "+ edgebus: CLI and camera node": ("edgebus.nodes.camera",),
    "+ typer reads the command line (pydantic)": ("pydantic",),
}
# A library's step loads nothing of edgebus's: what edgebus's modules take is on edgebus's
# steps (the models step builds sessions with edgebus's codec, already loaded before it).
NO_NEW_EDGEBUS = ("+ numpy", "+ onnxruntime", "+ sqlalchemy (orm, SQLite dialect)",
                  "+ gmqtt, msgpack", "+ typer, rich, PIL, psutil")  # fmt: skip


def test_cumulative_steps_grow_and_never_lose_peak():
    heard: list[str] = []
    results = measure_cumulative(on_reading=lambda reading: heard.append(reading.step))
    assert heard == [step.name for step in CAMERA_STEPS]
    peaks = [r.reading.peak_mb for r in results]
    assert all(r.reading.rss_mb > 0 and r.reading.peak_mb >= r.reading.rss_mb for r in results)
    assert peaks == sorted(peaks), peaks  # a step adds code, never takes any away
    assert results[0].peak_increment_mb == results[0].reading.peak_mb  # over nothing
    for before, after in itertools.pairwise(results):
        assert after.peak_increment_mb == pytest.approx(after.reading.peak_mb
                                                         - before.reading.peak_mb)  # fmt: skip
    models = results[4]
    assert models.reading.step.startswith("+ camera models")
    assert models.rss_increment_mb > 1.0  # the encoder and decoder sessions hold memory


@pytest.mark.parametrize("index", range(1, len(CAMERA_STEPS)))
def test_each_step_loads_only_what_it_names(index):
    step = CAMERA_STEPS[index]
    absent, present = NOT_YET.get(step.name, ()), LOADED.get(step.name, ())
    check = (
        f"import sys\n"
        f"early = [m for m in {absent!r} if m in sys.modules]\n"
        f"assert not early, f'loaded early: {{early}}'\n"
        f"missing = [m for m in {present!r} if m not in sys.modules]\n"
        f"assert not missing, f'not loaded: {{missing}}'"
    )
    measure(step.name, cumulative_code(CAMERA_STEPS, index) + "\n" + check)


@pytest.mark.parametrize("name", NO_NEW_EDGEBUS)
def test_a_library_step_loads_none_of_edgebus(name):
    index = next(i for i, step in enumerate(CAMERA_STEPS) if step.name == name)
    assert CAMERA_STEPS[index].owner == LIBRARY
    check = (
        "import sys\n"
        "_before = {m for m in sys.modules if m.startswith('edgebus')}\n"
        f"{CAMERA_STEPS[index].code}\n"
        "_new = sorted(m for m in sys.modules if m.startswith('edgebus') and m not in _before)\n"
        "assert not _new, f'a library step loaded {_new}'"
    )
    measure(name, cumulative_code(CAMERA_STEPS, index - 1) + "\n" + check)


def test_every_step_says_whose_memory_it_adds():
    for step in CAMERA_STEPS:
        assert step.owner == (EDGEBUS if step.name.startswith("+ edgebus:") else LIBRARY), step
    assert [step.name for step in CAMERA_STEPS if step.loads_models] == [
        "+ camera models (onnxruntime sessions)"
    ]


def test_a_library_alone_is_measured_over_a_bare_interpreter():
    numpy = next(step for step in ALONE if step.name == "numpy")
    bare, alone = measure_alone([numpy])
    assert bare.reading.step == "bare interpreter" and alone.reading.step == "numpy"
    assert bare.reading.rss_mb > 0
    assert alone.peak_increment_mb == pytest.approx(alone.reading.peak_mb - bare.reading.peak_mb)
    assert alone.peak_increment_mb > 2.0  # numpy's extension modules and BLAS


def test_a_failing_step_raises_an_error_naming_it():
    steps = [CAMERA_STEPS[0], Step("broken step", "import edgebus_no_such_module")]
    with pytest.raises(MemoryStepError, match=r"memory step 'broken step'.*ModuleNotFound"):
        measure_cumulative(steps)


def test_a_stuck_step_is_killed_at_its_timeout():
    start = time.monotonic()
    with pytest.raises(MemoryStepError, match=r"memory step 'stuck'.*within 1 s"):
        measure("stuck", "import time\ntime.sleep(60)", timeout_s=1.0)
    assert time.monotonic() - start < 20


def test_a_step_that_prints_no_reading_is_an_error():
    # Exits cleanly before the reading is printed.
    with pytest.raises(MemoryStepError, match=r"memory step 'silent'.*no RSS reading"):
        measure("silent", "import os\nos._exit(0)")


def test_the_reading_is_found_among_a_library_s_own_output():
    reading = parse_reading("noisy", "edgebus-memory 1 2 3\nwarming up\nedgebus-memory 2048 "
                            "4096\nbye\n")  # fmt: skip
    assert (reading.rss_mb, reading.peak_mb) == (2.0, 4.0)
