"""Start a private Mosquitto on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgebus.bench.processes import terminate
from edgebus.broker.ports import free_port, wait_for_port


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
    `users` (name -> password) turns anonymous access off; `acl` is a Mosquitto acl_file.
    """

    port: int = field(default_factory=free_port)
    persistent: bool = False
    stock: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgebus-mosq-")))
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)
    acl: str | None = None
    extra_config: str = ""  # more lines for mosquitto.conf (a bridge, say)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        anonymous = "false" if self.users else "true"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {anonymous}", "log_dest none"]
        if self.users:
            lines.append(f"password_file {self._private_file('passwords', self._passwords())}")
        if self.acl is not None:
            lines.append(f"acl_file {self._private_file('acl', self.acl)}")
        if not self.stock:
            lines += ["max_queued_messages 100000", "max_inflight_messages 0"]
        if self.persistent:
            # Started as root, mosquitto drops to its own user, which must be able to
            # write the persistence file into our private directory.
            self.workdir.chmod(0o777)
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        if self.extra_config:
            lines.append(self.extra_config.rstrip("\n"))
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _passwords(self) -> str:
        path = self.workdir / "passwords"
        path.write_text("")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True,
                           capture_output=True)  # fmt: skip
        return path.read_text()

    def _private_file(self, name: str, text: str) -> Path:
        # Started as root, mosquitto reads these as its own user: hand them over, 0600.
        path = self.workdir / name
        path.write_text(text)
        path.chmod(0o600)
        self.workdir.chmod(0o711)
        with contextlib.suppress(LookupError, PermissionError):
            shutil.chown(path, user="mosquitto")
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
        terminate(self.process)  # SIGTERM lets mosquitto write its persistence file
        self.process = None

    def __enter__(self) -> LocalMosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
