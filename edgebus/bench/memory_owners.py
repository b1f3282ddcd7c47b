"""Whose memory a process holds: its mapped files and its Python objects, by owner.

An owner is the distribution a file belongs to (`numpy`, `sqlalchemy`, `onnxruntime`...),
`edgebus` for the product's own code, `Python stdlib` for the interpreter's library,
`system libraries` for shared objects outside Python (libc, libsqlite3, libssl) and
`other Python code` for a script or test outside all of these.

- `smaps_by_owner` sums /proc/PID/smaps: the resident pages of each mapped file go to its
  owner, anonymous memory (the malloc heaps, thread stacks, onnxruntime's arenas) to
  `ANON`, which the Python objects below are part of.
- `traced_by_owner` sums a tracemalloc snapshot. A Python object goes to the first frame
  of its allocation's traceback, from the innermost out, that is not the standard
  library's: asyncio or threading allocating for edgebus's task is edgebus's memory. A
  traceback that passes through the import machinery first is a module loaded while the
  process ran (its code objects, unmarshalled by importlib, carry no owner of their own):
  `IMPORTED`.
"""

from __future__ import annotations

import re
import sysconfig
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANON = "anonymous (malloc heaps, stacks, arenas)"
IMPORTED = "modules imported while running"
STDLIB = "Python stdlib"
SYSTEM = "system libraries"
OTHER = "other Python code"
EDGEBUS = "edgebus"
MB = 2**20  # MiB, as the memory steps count them

_EDGEBUS_DIR = str(Path(__file__).resolve().parents[1]) + "/"
_STDLIB_DIRS = tuple(
    {sysconfig.get_paths()[key] + "/" for key in ("stdlib", "platstdlib")}
)  # fmt: skip
_SITE = re.compile(r"/(?:site|dist)-packages/([^/]+)")
_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
# Distributions whose wheels ship their shared objects in a sibling folder of their own.
_SIBLING_LIBS = re.compile(r"^(.+?)(?:\.libs|_libs)$")


def owner_of_path(path: str) -> str:
    """The owner of a source or shared-object file, by where it lies."""
    if path.startswith("<frozen importlib") or "/importlib/" in path:
        return IMPORTED
    if path.startswith(_EDGEBUS_DIR) and "/site-packages/" not in path[len(_EDGEBUS_DIR) :]:
        return EDGEBUS
    site = _SITE.search(path)
    if site is not None:
        top = site.group(1).removesuffix(".py")
        if top.endswith((".dist-info", ".egg-info")):
            return top.rsplit("-", 1)[0]
        sibling = _SIBLING_LIBS.match(top)
        return sibling.group(1) if sibling else top
    if path.startswith("<") or path.startswith(_STDLIB_DIRS):
        # <string>: code made by exec, such as a dataclass's __init__; it allocates for
        # whoever called it, as the standard library's code does.
        return STDLIB
    if path.endswith(".py"):
        return OTHER  # Python code outside edgebus and the installed packages: a test's
    return SYSTEM


def smaps_by_owner(smaps_text: str) -> dict[str, int]:
    """Resident bytes of each owner in a /proc/PID/smaps text. Unnamed mappings, [heap]
    and [stack] are anonymous; [vdso] and the like are the system's."""
    owners: Counter[str] = Counter()
    owner = ANON
    for line in smaps_text.splitlines():
        if _MAPPING.match(line):
            fields = line.split(maxsplit=5)
            name = fields[5].strip() if len(fields) > 5 else ""
            if not name or name in ("[heap]", "[stack]") or name.startswith("[anon"):
                owner = ANON
            elif name.startswith("["):
                owner = SYSTEM
            else:
                owner = owner_of_path(name.removesuffix(" (deleted)"))
                owner = SYSTEM if owner == IMPORTED else owner  # a mapped file is no import
        elif line.startswith("Rss:"):
            owners[owner] += int(line.split()[1]) * 1024
    return dict(owners)


def owner_of_traceback(filenames: Iterable[str]) -> str:
    """The owner of one allocation, its traceback's file names innermost first."""
    for filename in filenames:
        owner = owner_of_path(filename)
        if owner == IMPORTED:
            return IMPORTED
        if owner != STDLIB:
            return owner
    return STDLIB


def traced_by_owner(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    """Bytes of the snapshot's live Python objects, by owner."""
    owners: Counter[str] = Counter()
    for trace in snapshot.traces:
        # A Traceback iterates from the oldest frame to the most recent: read it reversed.
        filenames = [frame.filename for frame in trace.traceback][::-1]
        owners[owner_of_traceback(filenames)] += trace.size
    return dict(owners)


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What each owner holds in `after` beyond `before` (negative where it shrank)."""
    return {key: after.get(key, 0) - before.get(key, 0) for key in set(after) | set(before)}


@dataclass(frozen=True, slots=True)
class OwnerGain:
    """What one owner gained while a process ran, in MB."""

    owner: str
    files_mb: float  # pages of its mapped files made resident (shared objects, mostly)
    objects_mb: float  # its Python objects allocated while running and still alive


@dataclass(frozen=True, slots=True)
class RunningGain:
    """A running process's gain, split by owner. `anonymous_mb` is the anonymous memory it
    gained (Python objects live in it); `native_mb` is the part no Python object accounts
    for: model sessions, SQLite's page cache, thread stacks, malloc's slack."""

    owners: tuple[OwnerGain, ...]
    anonymous_mb: float
    native_mb: float


def running_gain(plain: Mapping[str, Any], traced: Mapping[str, Any]) -> RunningGain:
    """Combine two reports of `memory_node`: the plain run's mapped memory (RSS is only
    true untraced) and the traced run's Python objects. Owners are listed largest first."""
    files = delta(plain["mapped_after"], plain["mapped_before"])
    anonymous = files.pop(ANON, 0)
    objects: dict[str, int] = dict(traced["traced"])
    owners = [
        OwnerGain(owner, files.get(owner, 0) / MB, objects.get(owner, 0) / MB)
        for owner in set(files) | set(objects)
    ]
    owners.sort(key=lambda gain: (-(gain.files_mb + gain.objects_mb), gain.owner))
    native = anonymous - sum(objects.values())
    return RunningGain(tuple(owners), anonymous / MB, native / MB)
