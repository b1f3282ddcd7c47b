"""Start a private Mosquitto on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


@dataclass
class LocalMosquitto:
    """A mosquitto process bound to 127.0.0.1; `persistent` keeps sessions across restarts.

    `stock` leaves every limit at Mosquitto's defaults, as a user's broker has them:
    20 QoS 1/2 messages in flight per client (the Receive Maximum it grants), 1000 queued
    per client beyond that, no persistence. Otherwise those limits are lifted (benchmarks).
    """

    port: int = field(default_factory=free_port)
    persistent: bool = False
    stock: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgebus-mosq-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "log_dest none"]
        if not self.stock:
            lines += ["max_queued_messages 100000", "max_inflight_messages 0"]
        if self.persistent:
            # Started as root, mosquitto drops to its own user, which must be able to
            # write the persistence file into our private directory.
            self.workdir.chmod(0o777)
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> LocalMosquitto:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("the mosquitto binary is not installed")
        self.process = subprocess.Popen(
            [binary, "-c", str(self._config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing written; sessions it held in memory are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM lets mosquitto write its persistence file
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalMosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
