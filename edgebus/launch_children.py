"""The child processes of `edgebus up --processes`: one `edgebus node` per edge and
camera, started from a private settings file, its output relayed a named line at a time,
and stopped with SIGTERM, then SIGKILL when it does not go in time."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from edgebus.config import Settings, write_private_toml

log = logging.getLogger("edgebus.up")

# How long `up` waits for a stopping child before it sends SIGKILL. A camera settles its
# frames' outcomes and every node drains its store sync on the way out.
CHILD_STOP_S = 30.0


class ChildSettings:
    """Each child's full effective settings (config file, environment and flags), as a
    TOML file in a folder only this user can read, removed when `up` ends: secrets such as
    the broker's password never appear on a command line."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="edgebus-up-"))  # mode 0700

    def write(self, settings: Settings) -> Path:
        absolute = dataclasses.replace(settings, data_dir=os.path.abspath(settings.data_dir))
        return write_private_toml(absolute, self.folder / f"{settings.node_id}.toml")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _child_env() -> dict[str, str]:
    # The settings file holds the effective values; EDGEBUS_* variables would override it.
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}


def _node_command(config: Path, role: str, node_id: str) -> list[str]:
    return [sys.executable, "-m", "edgebus", "node", "--role", role, "--id", node_id,
            "--config", str(config), "--wait", "20"]  # fmt: skip


def spawn(settings: Settings, child_settings: ChildSettings) -> subprocess.Popen[bytes]:
    """Start one node as a child process, its output relayed to this one's stderr."""
    config = child_settings.write(settings)
    child = subprocess.Popen(
        _node_command(config, settings.role, settings.node_id), env=_child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    relay_output(child, settings.node_id)
    return child


def relay_output(child: subprocess.Popen[bytes], node_id: str) -> threading.Thread:
    """Copy a child's output to this process's stderr, a line at a time and named, until
    it exits. Written through whatever sys.stderr is at the time: under the live view
    that is rich's proxy, which prints each line above the table."""

    def relay() -> None:
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with _RELAY_LOCK:
                sys.stderr.write(f"{node_id}: {line}\n")
                sys.stderr.flush()

    thread = threading.Thread(target=relay, name=f"relay-{node_id}", daemon=True)
    thread.start()
    return thread


# One line at a time from the relays of all children.
_RELAY_LOCK = threading.Lock()


async def stop_children(
    children: dict[str, subprocess.Popen[bytes]], grace_s: float = CHILD_STOP_S
) -> list[str]:
    """SIGTERM each child, wait up to grace_s for all of them, then SIGKILL the rest;
    returns the ones that had to be killed."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    until = loop.time() + grace_s
    while loop.time() < until and any(c.poll() is None for c in children.values()):
        await asyncio.sleep(0.05)
    killed = [node_id for node_id, c in children.items() if c.poll() is None]
    for node_id in killed:
        children[node_id].kill()
        children[node_id].wait()
        log.warning("%s did not stop within %g s of SIGTERM; killed", node_id, grace_s)
    return killed


def kill_children(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever still runs: the last resort when `up` ends in an error."""
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()
