"""TLS to Mosquitto, and the embedded broker's password file and ACL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from edgebus.bench.mosquitto import mosquitto_binary
from edgebus.broker.address import TlsOptions, parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.broker.embedded import EmbeddedBroker, add_user
from edgebus.broker.ports import free_port, wait_for_port
from edgebus.broker.transport import ConnectFailed
from edgebus.messages import Status

from ..conftest import missing_service

pytestmark = pytest.mark.integration


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    commands = [
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca_cert,
            "-days",
            "1",
            "-subj",
            "/CN=edgebus-test-ca",
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_cert,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "1",
            "-extfile",
            ext,
        ],
    ]
    for command in commands:
        subprocess.run([str(c) for c in command], check=True, capture_output=True)
    for path in folder.iterdir():
        path.chmod(0o644)  # mosquitto drops root and reads them as its own user
    folder.chmod(0o755)
    return ca_cert, cert, key


async def test_mqtts_with_a_ca_file():
    if mosquitto_binary() is None:
        missing_service("the mosquitto binary is needed for the TLS test")
    # Not pytest's tmp_path: its parents are private to root, and mosquitto reads the
    # certificates after dropping to its own user.
    tmp_path = Path(tempfile.mkdtemp(prefix="edgebus-tls-"))
    other = Path(tempfile.mkdtemp(prefix="edgebus-tls-other-"))
    ca, cert, key = make_certificates(tmp_path)
    port = free_port()
    config = tmp_path / "tls.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {ca}\ncertfile {cert}\n"
        f"keyfile {key}\nlog_dest none\n"
    )
    broker = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        url = f"mqtts://127.0.0.1:{port}"
        bus = Bus(
            parse_broker_url(url, TlsOptions(ca_file=str(ca))),
            BusOptions(site="t", node_id=f"tls-{uuid.uuid4().hex[:6]}"),
        )
        async with bus:
            sub = await bus.subscribe("t/tls")
            await bus.publish("t/tls", Status("n", "edge", "online"), qos=1)
            assert (await sub.get(5)).message.node == "n"
        untrusted = Bus(
            parse_broker_url(url),
            BusOptions(node_id="untrusted", reconnect_min_s=0.05, reconnect_max_s=0.1),
        )
        with pytest.raises(ConnectFailed, match="not trusted by the system's CA store"):
            await untrusted.start(timeout=1.5)
        # Each TLS failure names its cause: another CA, and a certificate for another host.
        other_ca, _, _ = make_certificates(other)
        for address, expected in (
            (parse_broker_url(url, TlsOptions(ca_file=str(other_ca))), "not trusted by ca_file"),
            (parse_broker_url(f"mqtts://localhost:{port}", TlsOptions(ca_file=str(ca))),
             "not valid for host 'localhost'"),
        ):  # fmt: skip
            failing = Bus(address, BusOptions(node_id="tls-fail", reconnect_min_s=0.05,
                                              reconnect_max_s=0.1))  # fmt: skip
            with pytest.raises(ConnectFailed, match=expected):
                await failing.start(timeout=1.5)
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(tmp_path, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)


async def test_embedded_broker_password_file_and_acl(tmp_path):
    users = tmp_path / "users"
    add_user(users, "camera-1", "s3cret")
    acl = tmp_path / "acl.toml"
    acl.write_text('[users.camera-1]\npublish = ["t/allowed/#"]\nsubscribe = ["t/#"]\n')
    async with EmbeddedBroker(0, users_file=users, acl_file=acl) as broker:
        good = parse_broker_url(f"mqtt://camera-1:s3cret@127.0.0.1:{broker.port}")
        bad = parse_broker_url(f"mqtt://camera-1:wrong@127.0.0.1:{broker.port}")
        intruder = Bus(
            bad,
            BusOptions(
                node_id="intruder", protocol="3.1.1", reconnect_min_s=0.05, reconnect_max_s=0.1
            ),
        )
        with pytest.raises(ConnectFailed):
            await intruder.start(timeout=1.5)
        options = {"protocol": "3.1.1", "site": "t"}
        async with (
            Bus(good, BusOptions(node_id="cam-a", **options)) as a,
            Bus(good, BusOptions(node_id="cam-b", **options)) as b,
        ):
            sub = await b.subscribe("t/#")
            await a.publish("t/denied/x", Status("denied", "camera", "online"), qos=1)
            await a.publish("t/allowed/x", Status("allowed", "camera", "online"), qos=1)
            assert (await sub.get(5)).message.node == "allowed"
            with pytest.raises(TimeoutError):
                await sub.get(0.5)
    await asyncio.sleep(0)
