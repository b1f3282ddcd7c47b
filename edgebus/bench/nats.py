"""A NATS cluster on loopback with its MQTT listener on every member (tests, benchmarks).

NATS speaks MQTT 3.1.1 only (an MQTT 5 CONNECT is refused) and keeps MQTT sessions,
retained messages and QoS 1 deliveries in JetStream, which is clustered over the members
with Raft: a majority of members must be up. With two members, stopping either one
stops JetStream, so MQTT clients can neither connect nor exchange QoS 1 messages on the
survivor until the member is back (measured here: about 13 s after its restart). Three
members tolerate one loss.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgebus.bench.processes import terminate
from edgebus.broker.ports import free_port, wait_for_port

PROBE_TIMEOUT_S = 5.0


def nats_binary() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )


@dataclass
class NatsMember:
    name: str
    client_port: int
    cluster_port: int
    mqtt_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def config(self, routes: list[int]) -> Path:
        route_list = ", ".join(f'"nats-route://127.0.0.1:{port}"' for port in routes)
        text = "\n".join([
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.client_port}",
            f'jetstream {{ store_dir: "{self.workdir / "jetstream"}" }}',
            f"cluster {{ name: edgebus, listen: 127.0.0.1:{self.cluster_port}, "
            f"routes: [{route_list}] }}",
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}",
        ])  # fmt: skip
        path = self.workdir / "nats.conf"
        path.write_text(text + "\n")
        return path


@dataclass
class NatsCluster:
    size: int = 2
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgebus-nats-")))
    members: list[NatsMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        for index in range(self.size):
            name = f"n{index + 1}"
            member_dir = self.workdir / name
            member_dir.mkdir(parents=True, exist_ok=True)
            self.members.append(NatsMember(name, free_port(), free_port(), free_port(), member_dir))

    def start(self) -> NatsCluster:
        for member in self.members:
            self.start_member(member)
        return self

    def start_member(self, member: NatsMember) -> None:
        binary = nats_binary()
        if binary is None:
            raise FileNotFoundError("the nats-server binary is not installed")
        routes = [m.cluster_port for m in self.members]
        log = (member.workdir / "nats.log").open("ab")
        member.process = subprocess.Popen(
            [binary, "-c", str(member.config(routes))], stdout=log, stderr=log
        )
        log.close()
        wait_for_port(member.mqtt_port)

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Wait until a retained QoS 1 message published through each member is delivered
        through the next one (JetStream has its leaders); returns the seconds it took."""
        started = time.monotonic()
        for index, member in enumerate(self.members):
            receiver = self.members[(index + 1) % len(self.members)]
            while not _round_trip(member.mqtt_port, receiver.mqtt_port, f"ready/{member.name}"):
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"NATS cluster not ready after {timeout_s:g} s")
                time.sleep(0.5)
        return time.monotonic() - started

    def kill_member(self, member: NatsMember) -> None:
        """SIGKILL: no goodbye to the cluster; its JetStream state stays on disk."""
        if member.process is not None and member.process.poll() is None:
            member.process.kill()
            member.process.wait(10)
        member.process = None

    def stop(self) -> None:
        for member in self.members:
            terminate(member.process)
            member.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        return "\n".join(
            f"--- {m.name}\n{(m.workdir / 'nats.log').read_text(errors='replace')[-3000:]}"
            for m in self.members
            if (m.workdir / "nats.log").exists()
        )


def _round_trip(publish_port: int, receive_port: int, topic: str) -> bool:
    """Publish a retained QoS 1 message on one member; True once another delivers it."""
    got = threading.Event()
    clients = []
    try:
        for port in (publish_port, receive_port):
            client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
            client.connect("127.0.0.1", port, keepalive=10)
            client.loop_start()
            clients.append(client)
        publisher, receiver = clients
        receiver.on_message = lambda *_: got.set()
        receiver.subscribe(topic, qos=1)
        info = publisher.publish(topic, b"ready", qos=1, retain=True)
        info.wait_for_publish(PROBE_TIMEOUT_S)
        return info.is_published() and got.wait(PROBE_TIMEOUT_S)
    except (OSError, RuntimeError, ValueError):
        return False
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
