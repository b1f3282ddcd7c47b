"""Where a running `edgebus up` tells the tools its broker: `<data_dir>/fleet.json`.

`up` picks a free port for its embedded broker. The tools (`nodes`, `sub`, `pub`,
`qos`, `query --fresh`) run from the same directory find the running fleet here when
no broker was given by flag, environment or config file, so nobody copies a port. The
file is private (0600: a `--broker` URL may carry a password), names the `up` process,
is ignored once that process is gone, and is removed when `up` ends.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "fleet.json"


def publish(data_dir: Path, broker_url: str, site: str, protocol: str = "auto") -> Path:
    """`protocol` is the MQTT version the fleet's broker speaks ("3.1.1" for the embedded
    one), so a tool does not spend its first attempt on MQTT 5."""
    path = data_dir / FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"broker": broker_url, "site": site, "pid": os.getpid(), "protocol": protocol}
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path


def withdraw(data_dir: Path) -> None:
    path = data_dir / FILE_NAME
    try:
        if _read(path).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        return


@dataclass(frozen=True, slots=True)
class RunningFleet:
    broker: str
    site: str
    pid: int
    protocol: str = "auto"


def running_fleet(data_dir: Path) -> RunningFleet | None:
    """The `up` running from this data directory, if one is."""
    try:
        data = _read(data_dir / FILE_NAME)
    except (OSError, ValueError):
        return None
    pid, broker, site = data.get("pid"), data.get("broker"), data.get("site")
    if not (isinstance(pid, int) and isinstance(broker, str) and isinstance(site, str)):
        return None
    protocol = data.get("protocol")
    if protocol not in ("auto", "5", "3.1.1"):
        protocol = "auto"  # a file written before the key existed, or a damaged one
    return RunningFleet(broker, site, pid, str(protocol)) if _alive(pid) else None


def _read(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not an object")
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
