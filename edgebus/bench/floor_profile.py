"""A real node and its floor profiled side by side: where edgebus's own cost per frame
lies, stage by stage and by whose code runs.

The edge's pair is profiled by benchmarks/bench_edge_floor.py under a replay; the
camera's here:

Camera 0 of a real fleet and floor camera 0 of a floor fleet (`camera_floor`) each run
under cProfile on every thread (`profiled_node`), one fleet after the other on a fresh
stock Mosquitto, with the benchmark's count, period and window. Their time is attributed
to the camera's stage names (`stage_profile`, roles "camera" and "floor camera") and to
whose code ran. cProfile slows Python more than C, so each side's shares are applied to
its own plain CPU per frame, measured by the benchmark without a profiler (see
`side_by_side`); the difference per stage is edgebus's own cost there.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgebus.bench.fleet_usage import frames_in, measure_fleet
from edgebus.bench.floor_fleet import run_floor_fleet
from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.bench.stage_profile import MODEL, ROLE_STAGES, stage_owner_seconds

PROFILER = (sys.executable, "-m", "edgebus.bench.profiled_node")
REAL, FLOOR = "camera-0", "floor-0"


@dataclass(frozen=True, slots=True)
class Pairing:
    """A node and its floor: their roles in `stage_profile`, the stages that run the same
    code on both sides, and what that code is called in the by-code table."""

    real_role: str
    floor_role: str
    same_code_stages: tuple[str, ...]
    same_code_row: str


# The camera's weak model never runs at the defaults; its capture and encoder run on both.
CAMERA = Pairing(
    "camera",
    "floor camera",
    (MODEL, "capture", "encode (features, quantise, Huffman)"),
    "capture and encoder (both; measured plain)",
)
# The edge's decode and classify call (`FrameClassifier.classify_batch`) runs on both.
EDGE = Pairing(
    "edge",
    "floor edge",
    (MODEL, "Huffman decode", "decode (dequantise, zero-fill)"),
    "decode and classify (both; the models alone, measured plain)",
)


@dataclass(frozen=True, slots=True)
class FleetShape:
    cameras: int
    period_ms: int
    warmup_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class ProfiledNode:
    """One profiled node: profiled CPU seconds by (stage, whose code), and how many frames
    it handled while profiled."""

    seconds: dict[tuple[str, str], float]
    frames: int

    def by_stage(self, stages: Iterable[str]) -> dict[str, float]:
        """Seconds of each of `stages`."""
        return self._summed(stages, lambda stage, owner: stage)

    def by_owner(self, stages: Iterable[str]) -> dict[str, float]:
        """Seconds of each owner's code within `stages`."""
        return self._summed(stages, lambda stage, owner: owner)

    def _summed(self, stages: Iterable[str], key: Callable[[str, str], str]) -> dict[str, float]:
        wanted = set(stages)
        found: dict[str, float] = {}
        for (stage, owner), seconds in self.seconds.items():
            if stage in wanted:
                found[key(stage, owner)] = found.get(key(stage, owner), 0.0) + seconds
        return found


def _profiled(pstats_path: Path, role: str, frames: int) -> ProfiledNode:
    return ProfiledNode(stage_owner_seconds(pstats_path, role), frames)


async def profile_real(shape: FleetShape) -> ProfiledNode:
    """Camera 0 of a real fleet (cloud, one edge, the cameras at the product's defaults)."""
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-floor-profile-real-"))
    out = workdir / f"{REAL}.pstats"

    def cli_for(node: str) -> tuple[str, ...] | None:
        return (*PROFILER, str(out), f"{shape.warmup_s:g}") if node == REAL else None

    with LocalMosquitto(stock=True) as broker:
        run = await measure_fleet(broker.url, workdir, shape.cameras, shape.period_ms,
                                  shape.warmup_s, shape.duration_s, cli_for)  # fmt: skip
    window = json.loads(out.with_suffix(".json").read_text())
    frames = frames_in(run.store_url, REAL, window["start"], window["end"])
    return _profiled(out, "camera", frames)


def profile_floor(shape: FleetShape) -> ProfiledNode:
    """Floor camera 0 of a floor fleet of the same shape."""
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-floor-profile-"))
    out = workdir / f"{FLOOR}.pstats"

    def cli_for(name: str) -> tuple[str, ...] | None:
        if name != FLOOR:
            return None
        return (*PROFILER, str(out), f"{shape.warmup_s:g}", "--module",
                "edgebus.bench.camera_floor")  # fmt: skip

    with LocalMosquitto(stock=True) as broker:
        fleet = run_floor_fleet(broker.url, workdir, shape.cameras, shape.period_ms,
                                shape.warmup_s, shape.duration_s, cli_for=cli_for)  # fmt: skip
    return _profiled(out, "floor camera", fleet.reports[0].frames)


def _spread(found: dict[str, float], plain_ms: float) -> dict[str, float]:
    """Each key's share of the profiled time, as ms of `plain_ms`."""
    total = sum(found.values())
    return {key: seconds / total * plain_ms if total else 0.0 for key, seconds in found.items()}


def side_by_side(
    real: ProfiledNode, real_ms: float, floor: ProfiledNode, floor_ms: float,
    codec_ms: float, pairing: Pairing = CAMERA,
) -> list[dict[str, object]]:  # fmt: skip
    """Rows by stage, then by whose code: the real node's and the floor's ms per frame and
    the difference, edgebus's own cost there.

    The codec (a camera's capture and encoder, an edge's decode and classify) is the same
    code on both sides, measured without a profiler (`codec_ms`): the two sides share that
    figure, split among the codec's stages by each side's profile. Each side's profile
    then spreads the rest of its plain CPU per frame (`real_ms` or `floor_ms`, less
    `codec_ms`) over the other stages, and over whose code ran in them, so cProfile's
    heavier toll on Python than on the codec's C does not move cost between the codec and
    the rest."""
    stages = _unique(ROLE_STAGES[pairing.real_role] + ROLE_STAGES[pairing.floor_role])
    codec_stages = pairing.same_code_stages
    beyond = [stage for stage in stages if stage not in codec_stages]
    rows: list[dict[str, object]] = []

    def add(section: str, name: str, real_part: float, floor_part: float) -> None:
        rows.append({"section": section, "name": name, "real_ms": round(real_part, 3),
                     "floor_ms": round(floor_part, 3),
                     "edgebus_ms": round(real_part - floor_part, 3)})  # fmt: skip

    real_codec = _spread(real.by_stage(codec_stages), codec_ms)
    floor_codec = _spread(floor.by_stage(codec_stages), codec_ms)
    real_rest = _spread(real.by_stage(beyond), real_ms - codec_ms)
    floor_rest = _spread(floor.by_stage(beyond), floor_ms - codec_ms)
    for stage in stages:
        real_part = real_codec.get(stage, 0.0) + real_rest.get(stage, 0.0)
        floor_part = floor_codec.get(stage, 0.0) + floor_rest.get(stage, 0.0)
        if real_part or floor_part:
            add("stage", stage, real_part, floor_part)
    add("stage", "TOTAL", real_ms, floor_ms)
    real_owners = _spread(real.by_owner(beyond), real_ms - codec_ms)
    floor_owners = _spread(floor.by_owner(beyond), floor_ms - codec_ms)
    add("code", pairing.same_code_row, codec_ms, codec_ms)
    for owner in _unique(sorted(real_owners, key=lambda k: -real_owners[k]) + sorted(floor_owners)):
        add("code", owner, real_owners.get(owner, 0.0), floor_owners.get(owner, 0.0))
    add("code", "TOTAL", real_ms, floor_ms)
    return rows


def _unique(keys: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(keys))


def print_side_by_side(console: Console, rows: list[dict[str, object]], heading: str) -> None:
    """The two tables, by stage and by whose code; `heading` says whose CPU, where."""
    for section, title in (("stage", "by stage"), ("code", "by whose code ran")):
        table = Table(title=f"{heading}, real against floor, {title} (profiled shares of the "
                      "plain runs' mean)")  # fmt: skip
        for column in (section, "real", "floor", "edgebus own"):
            table.add_column(column, justify="left" if column == section else "right")
        for row in (r for r in rows if r["section"] == section):
            table.add_row(str(row["name"]), *(f"{row[key]:.2f}"
                          for key in ("real_ms", "floor_ms", "edgebus_ms")))  # fmt: skip
        console.print(table)


def plot_side_by_side(path: Path, rows: list[dict[str, object]], node: str = "camera") -> None:
    """Per stage: the real node's and the floor's ms per frame, with the difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [r for r in rows if r["section"] == "stage" and r["name"] != "TOTAL"]
    names = [str(r["name"]) for r in stages]
    real = [float(r["real_ms"]) for r in stages]  # type: ignore[arg-type]
    floor = [float(r["floor_ms"]) for r in stages]  # type: ignore[arg-type]
    positions = range(len(names))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(names) + 1.5))
    ax.barh([p - 0.2 for p in positions], real, height=0.4, label=f"real {node}")
    ax.barh([p + 0.2 for p in positions], floor, height=0.4, label=f"floor {node}")
    for position, real_ms, floor_ms in zip(positions, real, floor, strict=True):
        ax.annotate(f"{real_ms - floor_ms:+.2f}", (max(real_ms, floor_ms), position),
                    xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=8)  # fmt: skip
    ax.set_yticks(list(positions), names)
    ax.invert_yaxis()
    ax.set_xlabel("CPU ms per frame (profiled shares of the plain runs' CPU); label: real − floor")
    ax.set_title(f"A{'n' if node[0] in 'aeiou' else ''} {node} against its floor, stage by stage")
    ax.set_xlim(0, max(real + floor + [0.1]) * 1.15)  # room for the labels
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
