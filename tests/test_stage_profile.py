"""The stage table of bench_profile: a function's CPU goes to the nearest stage root above
it, split over its callers by call-edge time, and what no root reaches is the loop's."""

from __future__ import annotations

import json
import pstats
import subprocess
import sys

import pytest

from edgebus.bench.stage_profile import (
    ASYNCIO,
    BUILTIN,
    MODEL,
    OTHER,
    OWN,
    ROLE_ROOTS,
    ROLE_STAGES,
    StageAttribution,
    StageRoot,
    code_owner,
)

pytestmark = pytest.mark.timeout(60)

LOOP = ("asyncio/base_events.py", 1, "_run_once")
SEND = ("edgebus/nodes/frame_sender.py", 10, "send")
ENCODE = ("edgebus/message_wire.py", 20, "encode")
PACK = ("msgpack/__init__.py", 30, "packb")
RUN = ("edgebus/codecs/inference.py", 40, "run")
WRITE = ("edgebus/storage/local.py", 50, "_write_loop")
CYCLE_A = ("lib/a.py", 1, "a")
CYCLE_B = ("lib/b.py", 1, "b")


class FakeStats:
    """What StageAttribution reads of pstats.Stats: key -> (cc, nc, own s, cum s, callers),
    callers: caller key -> (cc, nc, own s, cum s) of that call edge."""

    def __init__(self, table: dict) -> None:
        self.stats = table


def edge(cumulative: float) -> tuple[int, int, float, float]:
    return (1, 1, 0.0, cumulative)


ROOTS = (
    StageRoot(MODEL, "edgebus/codecs/inference.py", "run"),
    StageRoot("message encode", "edgebus/message_wire.py", "encode"),
    StageRoot("chunking", "edgebus/nodes/frame_sender.py"),
    StageRoot("store writes", "edgebus/storage/"),
)


def seconds(table: dict) -> dict[str, float]:
    found = StageAttribution(FakeStats(table), ROOTS).seconds_by_stage()  # type: ignore[arg-type]
    return {stage: round(value, 6) for stage, value in found.items() if value}


def test_time_goes_to_the_nearest_root_above_it():
    table = {
        LOOP: (1, 1, 0.5, 4.0, {}),
        SEND: (1, 1, 1.0, 3.0, {LOOP: edge(3.0)}),
        ENCODE: (1, 1, 0.25, 1.0, {SEND: edge(1.0)}),
        PACK: (1, 1, 0.75, 0.75, {ENCODE: edge(0.75)}),  # msgpack under encode: encode's
        RUN: (1, 1, 1.0, 1.0, {SEND: edge(1.0)}),  # a root of its own under send
    }
    assert seconds(table) == {OTHER: 0.5, "chunking": 1.0, "message encode": 1.0, MODEL: 1.0}


def test_a_shared_function_is_split_by_each_callers_time():
    table = {
        SEND: (1, 1, 0.0, 3.0, {}),
        WRITE: (1, 1, 0.0, 1.0, {}),
        PACK: (4, 4, 2.0, 2.0, {SEND: edge(1.5), WRITE: edge(0.5)}),
    }
    assert seconds(table) == {"chunking": 1.5, "store writes": 0.5}


def test_a_recursive_cycle_outside_every_root_is_the_loops():
    table = {
        CYCLE_A: (2, 1, 1.0, 2.0, {CYCLE_B: edge(1.0)}),
        CYCLE_B: (2, 1, 1.0, 2.0, {CYCLE_A: edge(1.0)}),
    }
    assert seconds(table) == {OTHER: 2.0}


def test_a_negative_own_time_counts_as_none():
    """cProfile enabled while a thread blocked in a C call can book that call less than
    nothing; the stage it would fall in must not lose time it never had."""
    loop = ("/usr/lib/python3.11/asyncio/base_events.py", 1, "_run_once")
    send = ("/repo/edgebus/nodes/frame_sender.py", 10, "send")
    get = ("~", 0, "<method 'get' of '_queue.SimpleQueue' objects>")
    table = {
        loop: (1, 1, 1.0, 3.0, {}),
        send: (1, 1, 2.0, 2.0, {loop: edge(2.0)}),
        get: (1, 1, -16.0, -16.0, {loop: edge(-16.0)}),
    }
    assert seconds(table) == {OTHER: 1.0, "chunking": 2.0}


def test_each_role_lists_the_models_and_the_loop():
    for stages in ROLE_STAGES.values():
        assert stages[0] == MODEL and stages[-1] == OTHER and len(set(stages)) == len(stages)


def test_a_profiled_command_saves_every_threads_stats_and_its_window(tmp_path):
    out = tmp_path / "node.pstats"
    command = [sys.executable, "-m", "edgebus.bench.profiled_node", str(out), "0", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "node" in done.stdout  # the edgebus command ran
    window = json.loads(out.with_suffix(".json").read_text())
    assert set(window) == {"start", "end"} and window["start"] <= window["end"]
    assert pstats.Stats(str(out)).total_calls > 0  # type: ignore[attr-defined]


def test_a_profiled_module_runs_its_main_with_the_arguments_after_it(tmp_path):
    out = tmp_path / "floor.pstats"
    command = [sys.executable, "-m", "edgebus.bench.profiled_node", str(out), "0",
               "--module", "edgebus.bench.camera_floor", "camera", "--help"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--sync-interval" in done.stdout  # the floor camera's own options: its main ran
    assert pstats.Stats(str(out)).total_calls > 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["out.pstats"], "usage"),
        (["out.pstats", "soon", "--help"], "WARMUP_S 'soon'"),
        (["out.pstats", "0", "--module"], "--module needs a module name"),
        (["out.pstats", "0", "--module", "edgebus.no_such_thing"], "'edgebus.no_such_thing'"),
        (["out.pstats", "0", "--module", "edgebus.errors"], "it has no main()"),
    ],
)
def test_a_profiled_command_it_cannot_run_is_one_error_line(arguments, named, tmp_path):
    command = [sys.executable, "-m", "edgebus.bench.profiled_node", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], lines
    assert not (tmp_path / "out.pstats").exists()


def test_whose_code_ran_splits_a_builtin_by_its_callers():
    loop = ("/usr/lib/python3.11/asyncio/base_events.py", 1, "_run_once")
    send = ("/repo/edgebus/nodes/frame_sender.py", 10, "send")
    execute = ("/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", 5, "execute")
    length = ("~", 0, "<built-in method builtins.len>")
    table = {
        loop: (1, 1, 0.5, 4.0, {}),
        send: (1, 1, 1.0, 3.0, {loop: edge(3.0)}),
        execute: (1, 1, 0.5, 1.0, {send: edge(1.0)}),
        # len: 0.75 s when the frame sender called it, 0.25 s under SQLAlchemy
        length: (4, 4, 1.0, 1.0, {send: (3, 3, 0.75, 0.75), execute: (1, 1, 0.25, 0.25)}),
    }
    found = StageAttribution(FakeStats(table), ROOTS).seconds_by_stage_and_owner()  # type: ignore[arg-type]
    assert {k: round(v, 6) for k, v in found.items() if v} == {
        (OTHER, ASYNCIO): 0.5,
        ("chunking", OWN): 1.75,
        ("chunking", "sqlalchemy"): 0.75,
    }


def test_code_owner_names_edgebus_asyncio_packages_and_builtins():
    assert code_owner("/work/main/edgebus/broker/bus.py") == OWN
    assert code_owner("/x/lib/python3.11/asyncio/events.py") == ASYNCIO
    assert code_owner("/x/lib/python3.11/selectors.py") not in (OWN, ASYNCIO, BUILTIN)
    assert code_owner("/v/lib/python3.11/site-packages/gmqtt/mqtt/protocol.py") == "gmqtt"
    assert code_owner("~") == BUILTIN


@pytest.mark.parametrize("role", sorted(ROLE_ROOTS))
def test_every_root_names_code_that_exists(role):
    """A root whose file or function was renamed would match nothing, and its time would
    slip into "event loop and other" without a word."""
    import importlib.util
    from pathlib import Path

    site = Path(importlib.util.find_spec("gmqtt").origin).parents[1]  # type: ignore[union-attr, arg-type]
    repo = Path(__file__).resolve().parents[1]
    for root in ROLE_ROOTS[role]:
        base = repo if root.path.startswith("edgebus/") else site
        target = base / root.path
        assert target.exists(), f"{role}: {root.path} does not exist"
        if root.function:
            source = target.read_text()
            assert f"def {root.function}(" in source, f"{role}: no {root.function} in {root.path}"


def test_a_profiled_module_stopped_by_sigterm_still_saves_its_profile(mosquitto_url, tmp_path):
    """A floor process runs until the benchmark terminates it; SIGTERM's default action
    would end it before its profile is written."""
    from urllib.parse import urlsplit

    from edgebus.bench.processes import terminate

    out = tmp_path / "responder.pstats"
    where = urlsplit(mosquitto_url)
    respond = ("edgebus.bench.camera_floor", "respond", str(where.hostname), str(where.port))
    command = [sys.executable, "-m", "edgebus.bench.profiled_node", str(out), "0", "--module",
               *respond]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        process.terminate()
        process.wait(timeout=30)
    finally:
        terminate(process)
    assert process.returncode == 128 + 15, process.stderr.read() if process.stderr else ""
    assert pstats.Stats(str(out)).total_calls > 0  # type: ignore[attr-defined]
