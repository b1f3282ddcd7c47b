"""Where a camera process's memory goes: RSS after each thing it loads, step by step.

Every reading comes from a fresh interpreter (`sys.executable -c CODE`) that reads its own
VmRSS (resident now) and VmHWM (peak resident, the same number as ru_maxrss) from
/proc/self/status, so no reading inherits what an earlier one loaded.

Two measurements:
- `CAMERA_STEPS`, cumulative, in the order a camera process loads things: each step runs
  the code of every step before it plus its own, so its increment over the step before is
  what that step adds on top of everything already there;
- `ALONE`, each library by itself over a bare interpreter. These increments overlap (the
  onnxruntime wheel imports numpy, sqlalchemy and gmqtt share asyncio and typing helpers),
  so they do not add up to the cumulative total: the cumulative steps are the breakdown,
  the alone numbers say what dropping one library alone could save at most.

The camera's models are loaded by edgebus's own functions at the default `Settings()`
(the codec exactly as `camera_setup` builds it), never by a copy of their logic, so the
step follows the product when its defaults change. Linux only (/proc).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Each subprocess gets this long: loading the models takes seconds on a slow board, a
# wedged import must still end the benchmark with an error rather than hang it.
DEFAULT_TIMEOUT_S = 120.0

# Appended to every step's code: print this process's current and peak RSS (kB) on one
# marked line. It reads /proc by hand, importing nothing, so it adds nothing to measure.
_READ_RSS = textwrap.dedent(
    """
    def _edgebus_memory_line():
        fields = {}
        with open("/proc/self/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.split()[0] if value.split() else ""
        print("edgebus-memory", fields["VmRSS"], fields["VmHWM"], flush=True)

    _edgebus_memory_line()
    """
)
_MARK = "edgebus-memory"
KB_PER_MB = 1024  # MB here are MiB, as `ru_maxrss / 1024` and psutil's rss / 2**20 give


class MemoryStepError(RuntimeError):
    """A step's subprocess failed, timed out or printed no reading; the message names it."""


LIBRARY = "library"
EDGEBUS = "edgebus"


@dataclass(frozen=True, slots=True)
class Step:
    """A named piece of code; in a cumulative run it adds to the steps before it. `owner`
    says whose memory the step adds: a library's (`LIBRARY`) or edgebus's own (`EDGEBUS`).
    A step that `loads_models` builds onnxruntime sessions; every other step only imports or
    reads, so a running node can be given all of them beforehand (`traced_node`)."""

    name: str
    code: str
    owner: str = LIBRARY
    loads_models: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """A step's RSS in its own fresh process, in MB."""

    step: str
    rss_mb: float  # VmRSS: resident once the step's code has run
    peak_mb: float  # VmHWM: the most it was resident at any moment until then


@dataclass(frozen=True, slots=True)
class StepResult:
    """A reading and what it adds over the reading it is compared with."""

    reading: Reading
    rss_increment_mb: float
    peak_increment_mb: float


# The arguments the camera's command line is read with in the last step: what the
# benchmark's fleet starts a camera with.
CAMERA_ARGUMENTS = ("node", "--role", "camera", "--id", "cam-0", "--wait", "30")

# Each library's step comes before the edgebus step that uses it, so the library's memory
# is on its own step and edgebus's modules on theirs.
CAMERA_STEPS: tuple[Step, ...] = (
    Step("bare interpreter", "pass"),
    Step("+ numpy", "import numpy"),
    Step("+ onnxruntime", "import onnxruntime"),
    Step(
        "+ edgebus: codec modules",
        "import edgebus.config\nimport edgebus.nodes.codec_choice\nimport edgebus.codecs.pnc",
        EDGEBUS,
    ),
    Step(
        "+ camera models (onnxruntime sessions)",
        # As camera_setup._coding builds the codec: parse the configured codec, build it at
        # the frame width (PNC: its encoder and decoder sessions). A qos camera gets its
        # models over the bus later, and the offload gate loads its weak classifier only
        # when offload is on: neither happens at the defaults, both are kept for when the
        # defaults change.
        textwrap.dedent(
            """
            from edgebus.config import Settings
            from edgebus.nodes.codec_choice import parse_codec

            settings = Settings()
            if settings.codec != "qos":
                codec = parse_codec(settings.codec).build(settings.frame_width)
            if settings.offload != "off":
                from edgebus.nodes.camera_setup import offload_gate

                gate = offload_gate(settings)
            """
        ),
        loads_models=True,
    ),
    # The store declares its tables with the ORM and writes SQLite: all three are the
    # library's.
    Step(
        "+ sqlalchemy (orm, SQLite dialect)",
        "import sqlalchemy\nimport sqlalchemy.orm\nimport sqlalchemy.dialects.sqlite",
    ),
    Step("+ edgebus: local store", "import edgebus.storage.local", EDGEBUS),
    Step("+ gmqtt, msgpack", "import gmqtt\nimport msgpack"),  # the bus's wire format
    Step(
        "+ edgebus: bus",
        # The bus imports its MQTT client on demand: load the configured one (gmqtt) the
        # way the bus does, through connection_factory.
        textwrap.dedent(
            """
            import edgebus.broker.bus
            from edgebus.broker.transport import connection_factory
            from edgebus.config import Settings

            connection_factory(Settings().mqtt_client)
            """
        ),
        EDGEBUS,
    ),
    Step(
        "+ typer, rich, PIL, psutil",
        # What the CLI and the camera node import from outside edgebus: the CLI reads the
        # command line with typer and prints with rich, the synthetic source draws with
        # PIL, the node's monitor reads its CPU and memory with psutil.
        "import typer\nimport rich.console, rich.live, rich.progress, rich.table\n"
        "import PIL.Image, PIL.ImageDraw\nimport psutil",
    ),
    Step(
        "+ edgebus: CLI and camera node",
        # As `python -m edgebus node --role camera` does (tests/test_lean_imports.py): the
        # whole CLI package, then the role's class, which edgebus.nodes imports on demand.
        textwrap.dedent(
            """
            import edgebus.cli
            from edgebus.cli.fleet import role_class

            role_class("camera")
            """
        ),
        EDGEBUS,
    ),
    Step(
        "+ typer reads the command line (pydantic)",
        # typer checks each parameter's value with a pydantic TypeAdapter, imported the
        # first time a command line is read: part of every node's start, not of import.
        textwrap.dedent(
            f"""
            import typer.main
            import edgebus.cli

            _command = typer.main.get_command(edgebus.cli.app)
            _name, *_args = {CAMERA_ARGUMENTS!r}
            _command.commands[_name].make_context(_name, list(_args))
            """
        ),
    ),
)

# Each library alone over a bare interpreter: PIL as the camera uses it (PIL.Image).
ALONE: tuple[Step, ...] = (
    Step("numpy", "import numpy"),
    Step("onnxruntime", "import onnxruntime"),
    Step("sqlalchemy", "import sqlalchemy"),
    Step("gmqtt", "import gmqtt"),
    Step("PIL", "import PIL.Image"),
)
BARE = CAMERA_STEPS[0]


def parse_reading(step: str, stdout: str) -> Reading:
    """The reading on the last marked line of a step's output; MemoryStepError if none
    (a library may print its own lines, so the mark, not the position, finds it)."""
    for line in reversed(stdout.splitlines()):
        parts = line.split()
        if len(parts) == 3 and parts[0] == _MARK:
            rss_kb, peak_kb = int(parts[1]), int(parts[2])
            return Reading(step, rss_kb / KB_PER_MB, peak_kb / KB_PER_MB)
    raise MemoryStepError(f"memory step {step!r}: the subprocess printed no RSS reading")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def measure(step: str, code: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Reading:
    """Run `code` in a fresh interpreter and read its RSS. Raises MemoryStepError naming
    `step` if it fails, runs past `timeout_s` (it is killed) or prints no reading."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code + "\n" + _READ_RSS],
            capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise MemoryStepError(f"memory step {step!r}: no reading within {timeout_s:g} s") from None
    except OSError as exc:
        raise MemoryStepError(f"memory step {step!r}: cannot start python ({exc})") from None
    if done.returncode != 0:
        raise MemoryStepError(
            f"memory step {step!r}: exit code {done.returncode}: {_last_line(done.stderr)}"
        )
    return parse_reading(step, done.stdout)


def cumulative_code(steps: Sequence[Step], upto: int) -> str:
    """The code of steps[0..upto], in order: what step `upto`'s process runs."""
    return "\n".join(step.code for step in steps[: upto + 1])


def measure_cumulative(
    steps: Sequence[Step] = CAMERA_STEPS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_reading: Callable[[Reading], None] | None = None,
) -> list[StepResult]:
    """Each step with all the steps before it, in a fresh process; increments are over the
    step before (the first step's over nothing). `on_reading` hears each one as it comes."""
    results: list[StepResult] = []
    for index, step in enumerate(steps):
        reading = measure(step.name, cumulative_code(steps, index), timeout_s)
        results.append(increment(reading, results[-1].reading if results else None))
        if on_reading is not None:
            on_reading(reading)
    return results


def measure_alone(
    libraries: Sequence[Step] = ALONE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_reading: Callable[[Reading], None] | None = None,
) -> list[StepResult]:
    """A bare interpreter, then each library alone; each library's increment is over the
    bare interpreter, measured here too so both sides share the moment's conditions."""
    bare = measure(BARE.name, BARE.code, timeout_s)
    results = [increment(bare, None)]
    if on_reading is not None:
        on_reading(bare)
    for library in libraries:
        reading = measure(library.name, library.code, timeout_s)
        results.append(increment(reading, bare))
        if on_reading is not None:
            on_reading(reading)
    return results


def increment(reading: Reading, base: Reading | None) -> StepResult:
    """`reading` with its growth over `base` (over zero when there is no base)."""
    if base is None:
        return StepResult(reading, reading.rss_mb, reading.peak_mb)
    return StepResult(reading, reading.rss_mb - base.rss_mb, reading.peak_mb - base.peak_mb)
