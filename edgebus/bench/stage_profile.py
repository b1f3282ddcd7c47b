"""Where a node's CPU goes, by pipeline stage, from a cProfile file of the running node.

A function belongs to the stage of the nearest stage root above it in the call graph:
`Bus.publish` is "bus publish" whether the frame sender or the outcome tracker called it,
and the msgpack work under it is too. cProfile keeps only one level of callers, so a
function that several callers share is split among their stages in proportion to the
time each call edge took (gprof's assumption). Time under no root at all (the event loop
choosing what runs next, select) is "event loop and other".

The profile is taken with a per-thread CPU clock (`edgebus.bench.profiled_node`), so
waiting costs nothing and each worker thread's CPU counts once.

Each stage's time is also split by whose code ran: edgebus's own, asyncio, another part
of Python's standard library, or a package (gmqtt, sqlalchemy, numpy, ...). A builtin
(`len`, a socket's `send`, sqlite3's `execute`) belongs to whoever called it, split by
call-edge time: sqlite3 under SQLAlchemy is SQLAlchemy's cost, `len` in the frame sender
is edgebus's. That says which of a stage's cost the project could change.
"""

from __future__ import annotations

import pstats
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# pstats' key of a function: (file, line, name)
FunctionKey = tuple[str, int, str]

OTHER = "event loop and other"
MODEL = "model inference (onnxruntime)"
OWN = "edgebus"
ASYNCIO = "asyncio"
STDLIB = "python (other standard library)"
BUILTIN = "python builtins"


@dataclass(frozen=True, slots=True)
class StageRoot:
    stage: str
    path: str  # a piece of the file path
    function: str = ""  # empty: every function of that file

    def matches(self, key: FunctionKey) -> bool:
        file, _, name = key
        return self.path in file and (not self.function or name == self.function)


def _roots(*rows: tuple[str, str] | tuple[str, str, str]) -> tuple[StageRoot, ...]:
    return tuple(StageRoot(*row) for row in rows)


# Shared by both roles. Earlier rows win when a function matches two.
COMMON = _roots(
    (MODEL, "edgebus/codecs/inference.py", "run"),
    ("message encode", "edgebus/message_wire.py", "encode"),
    ("message decode", "edgebus/message_wire.py", "decode"),
    ("bus publish", "edgebus/broker/bus.py", "publish"),
    ("bus publish", "edgebus/broker/outbox.py"),
    ("bus receive and dispatch", "gmqtt/mqtt/protocol.py"),
    ("bus receive and dispatch", "gmqtt/mqtt/handler.py"),
    ("bus receive and dispatch", "edgebus/broker/inbox.py"),
    ("bus receive and dispatch", "edgebus/broker/transport_gmqtt.py", "_on_message"),
    ("sync", "edgebus/storage/sync.py"),
    ("store writes", "edgebus/storage/"),
    ("store writes", "sqlalchemy/"),
    ("status, heartbeat, metrics", "edgebus/actor/"),
)

CAMERA = _roots(
    ("capture", "edgebus/nodes/sources.py"),
    ("capture", "edgebus/shapes.py"),
    ("weak model and offload policy", "edgebus/nodes/offload_gate.py"),
    ("weak model and offload policy", "edgebus/policies/"),
    ("encode (features, quantise, Huffman)", "edgebus/nodes/frame_sender.py", "_encode_blocking"),
    ("encode (features, quantise, Huffman)", "edgebus/codecs/"),
    ("chunking and link pacing", "edgebus/nodes/frame_sender.py"),
    ("chunking and link pacing", "edgebus/nodes/frame_job.py"),
    ("chunking and link pacing", "edgebus/nodes/chunking.py"),
    ("chunking and link pacing", "edgebus/broker/link.py"),
    ("frame records and outcomes", "edgebus/nodes/camera_records.py"),
    ("frame records and outcomes", "edgebus/nodes/frame_outcomes.py"),
)

EDGE = _roots(
    ("Huffman decode", "edgebus/codecs/huffman.py"),
    ("Huffman decode", "dahuffman/"),
    ("decode (dequantise, zero-fill)", "edgebus/codecs/"),
    ("decode (dequantise, zero-fill)", "edgebus/nodes/decoding.py"),
    ("assembly", "edgebus/nodes/assembler.py"),
    ("assembly", "edgebus/nodes/frame_ledger.py"),
    ("assembly", "edgebus/nodes/edge.py", "_on_delivery"),
    ("assembly", "edgebus/nodes/edge.py", "_expire_loop"),
    ("outcomes and result publish", "edgebus/nodes/edge_outcomes.py"),
    ("batching", "edgebus/nodes/edge.py"),
)

# The floor camera (edgebus/bench/camera_floor.py): the same capture and codec, and its
# few lines of glue under the camera's stage names, so the two profiles compare stage by
# stage. Its per-frame coroutine is "frame records and outcomes", as the real camera's
# records and outcome tracking are; the gmqtt publish it calls directly is "bus publish".
_FLOOR_FILE = "edgebus/bench/camera_floor.py"
FLOOR_CAMERA = _roots(
    ("capture", "edgebus/nodes/sources.py"),
    ("capture", "edgebus/shapes.py"),
    ("encode (features, quantise, Huffman)", "edgebus/codecs/"),
    ("encode (features, quantise, Huffman)", _FLOOR_FILE, "_capture_and_encode"),
    ("bus publish", "gmqtt/client.py", "publish"),
    ("bus receive and dispatch", _FLOOR_FILE, "_on_message"),
    ("sync", _FLOOR_FILE, "sync"),
    ("sync", _FLOOR_FILE, "frame_rows_after"),
    ("store writes", _FLOOR_FILE, "_record"),
    ("frame records and outcomes", _FLOOR_FILE, "frame"),
)

# The floor edge (edgebus/bench/edge_floor.py): the same decode and classify call, and
# its glue under the edge's stage names. Its message callback unpacks a frame and queues
# it, the real edge's decode and assembly in one: "assembly". Its worker's loop is
# "batching", as the real edge's classify loop is.
_FLOOR_EDGE_FILE = "edgebus/bench/edge_floor.py"
FLOOR_EDGE = _roots(
    ("assembly", _FLOOR_EDGE_FILE, "_on_message"),
    ("store writes", _FLOOR_EDGE_FILE, "_record"),
    ("outcomes and result publish", _FLOOR_EDGE_FILE, "_answer"),
    ("batching", _FLOOR_EDGE_FILE, "_decide"),
    ("sync", _FLOOR_FILE, "frame_rows_after"),
    ("bus publish", "gmqtt/client.py", "publish"),
)
# The edge's roots for its decode call, which the floor edge makes too.
_EDGE_DECODE = tuple(root for root in EDGE if root.path.startswith(("edgebus/codecs/",
                     "dahuffman/", "edgebus/nodes/decoding.py")))  # fmt: skip

ROLE_ROOTS = {
    "camera": COMMON[:1] + CAMERA + COMMON[1:],
    "edge": COMMON[:1] + EDGE + COMMON[1:],
    "floor camera": COMMON[:1] + FLOOR_CAMERA + COMMON[1:],
    "floor edge": COMMON[:1] + _EDGE_DECODE + FLOOR_EDGE + COMMON[1:],
}
ROLE_STAGES = {
    role: list(dict.fromkeys([root.stage for root in roots] + [OTHER]))
    for role, roots in ROLE_ROOTS.items()
}


class StageAttribution:
    """Seconds of CPU per stage in one profile."""

    def __init__(self, stats: pstats.Stats, roots: tuple[StageRoot, ...]) -> None:
        self.table: dict[FunctionKey, tuple[int, int, float, float, dict[FunctionKey, tuple]]]
        self.table = stats.stats  # type: ignore[attr-defined]
        self.roots = roots
        self._shares: dict[FunctionKey, dict[str, float]] = {}

    def _root_stage(self, key: FunctionKey) -> str | None:
        for root in self.roots:
            if root.matches(key):
                return root.stage
        return None

    def _share(self, key: FunctionKey) -> dict[str, float]:
        """This function's time, split over stages (fractions summing to 1)."""
        known = self._shares.get(key)
        if known is not None:
            return known
        stage = self._root_stage(key)
        if stage is not None:
            self._shares[key] = {stage: 1.0}
            return self._shares[key]
        self._shares[key] = {OTHER: 1.0}  # stands while this key's callers are resolved
        callers = self.table[key][4]
        weights = {c: edge[3] for c, edge in callers.items() if c in self.table and edge[3] > 0}
        total = sum(weights.values())
        if total <= 0:
            return self._shares[key]
        share: Counter[str] = Counter()
        for caller, weight in weights.items():
            for name, fraction in self._share(caller).items():
                share[name] += fraction * weight / total
        self._shares[key] = dict(share)
        return self._shares[key]

    def _owners(self, key: FunctionKey) -> dict[str, float]:
        """Whose code this function is (fractions summing to 1): its file's, or for a builtin
        its callers', split by the time each call edge spent in it."""
        owner = code_owner(key[0])
        if owner != BUILTIN:
            return {owner: 1.0}
        callers = self.table[key][4]
        weights = {code_owner(c[0]): 0.0 for c in callers}
        for caller, edge in callers.items():
            weights[code_owner(caller[0])] += edge[2]
        total = sum(weights.values())
        if total <= 0:
            return {BUILTIN: 1.0}
        return {name: weight / total for name, weight in weights.items() if weight > 0}

    def seconds_by_stage_and_owner(self) -> dict[tuple[str, str], float]:
        """CPU seconds per (stage, whose code)."""
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))  # call chains of coroutines run deep
        try:
            out: dict[tuple[str, str], float] = {}
            for key, (_, _, own_s, _, _) in self.table.items():
                # A profiler enabled while its thread was blocked in a C call (the floor
                # edge's worker in SimpleQueue.get when the warm-up ends) can book that
                # call a negative own time; no function spends less than nothing.
                own_s = max(own_s, 0.0)
                owners = self._owners(key)
                for stage, fraction in self._share(key).items():
                    for owner, part in owners.items():
                        out[stage, owner] = out.get((stage, owner), 0.0) + own_s * fraction * part
            return out
        finally:
            sys.setrecursionlimit(limit)

    def seconds_by_stage(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (stage, _), value in self.seconds_by_stage_and_owner().items():
            out[stage] = out.get(stage, 0.0) + value
        return out


def code_owner(file: str) -> str:
    """Whose code a profiled file is: edgebus, asyncio, the rest of the standard library, a
    package by its top-level name, or builtins (cProfile's "~")."""
    if file == "~" or file.startswith("<"):
        return BUILTIN
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0]
    if "edgebus/" in file:
        return OWN
    return ASYNCIO if "asyncio/" in file else STDLIB


def stage_seconds(profile: Path, role: str) -> dict[str, float]:
    """CPU seconds per stage of one node's profile, every stage of the role listed."""
    found = StageAttribution(pstats.Stats(str(profile)), ROLE_ROOTS[role]).seconds_by_stage()
    return {stage: found.get(stage, 0.0) for stage in ROLE_STAGES[role]}


def stage_owner_seconds(profile: Path, role: str) -> dict[tuple[str, str], float]:
    """CPU seconds per (stage, whose code) of one node's profile."""
    attribution = StageAttribution(pstats.Stats(str(profile)), ROLE_ROOTS[role])
    return attribution.seconds_by_stage_and_owner()
