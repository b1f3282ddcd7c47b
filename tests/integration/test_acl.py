"""`edgebus acl` as deployed: a broker with a password per node and the ACL the command
prints (a stock Mosquitto, and `edgebus broker --auth --acl`), every role as its own
process and user, the operator's tools run as their own user; every frame answered and
every store synced under it."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary
from edgebus.bench.process_fleet import Fleet, default_sensor, logged, wait_for
from edgebus.bench.processes import terminate
from edgebus.broker.ports import free_port, wait_for_port
from tests.conftest import missing_service
from tests.integration.test_cli import ENV

pytestmark = pytest.mark.integration

MEMBERS = {
    "cloud": "cloud",
    "coordinator": "coordinator",
    "edge-1": "edge",
    "camera-1": "camera",
    "sensor-1": "camera",
    "ops": "operator",
    "json-view": "json-view",
}
SOURCE, CHOSEN = default_sensor()
SENSOR = ("--codec", "qos", "--source", SOURCE)
ONLINE = " online at "


PASSWORDS = {user: f"pw-{user}" for user in MEMBERS}


def printed_acl(fmt: str) -> str:
    command = [sys.executable, "-m", "edgebus", "acl", "--format", fmt]
    command += [f"{node}={role}" for node, role in MEMBERS.items()]
    printed = subprocess.run(command, capture_output=True, text=True, timeout=30, env=ENV)
    assert printed.returncode == 0, printed.stderr
    return printed.stdout


@pytest.fixture
def secured_mosquitto():
    if mosquitto_binary() is None:
        missing_service("the mosquitto binary is needed for a broker with an acl_file")
    with LocalMosquitto(stock=True, users=PASSWORDS, acl=printed_acl("mosquitto")) as broker:
        yield broker.url


@pytest.fixture
def secured_embedded(tmp_path):
    """`edgebus broker` with a password file written by `edgebus broker-user`."""
    users, acl = tmp_path / "users", tmp_path / "acl.toml"
    acl.write_text(printed_acl("toml"))
    for user, password in PASSWORDS.items():
        command = [sys.executable, "-m", "edgebus", "broker-user", str(users), user]
        subprocess.run(command, input=password + "\n", text=True, timeout=30, env=ENV, check=True)
    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "edgebus", "broker", "--port", str(port), "--auth", str(users),
         "--acl", str(acl)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout_s=30)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        terminate(broker)


@pytest.fixture(params=["mosquitto", "embedded"])
def secured_broker(request):
    return request.getfixturevalue(f"secured_{request.param}")


def tool(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """An operator's command, logged in as `ops` through the environment."""
    env = {**ENV, "EDGEBUS_BROKER": fleet.url_for("ops"), "EDGEBUS_DATA_DIR": str(fleet.data_dir)}
    return subprocess.run([sys.executable, "-m", "edgebus", *args], capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip


@pytest.mark.timeout(240)
async def test_every_role_works_and_syncs_under_the_printed_acl(secured_broker, tmp_path):
    fleet = Fleet(secured_broker, tmp_path, passwords=PASSWORDS)
    try:
        for node_id in ("cloud", "coordinator", "edge-1"):
            fleet.start(MEMBERS[node_id], node_id)
        core = ("cloud", "coordinator", "edge-1")
        await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in core), 90, "core online")
        fleet.start("json-view", "json-view")
        fleet.start("camera", "camera-1")
        fleet.start("camera", "sensor-1", *SENSOR)
        cameras = ("camera-1", "sensor-1")
        await wait_for(lambda: all(logged(fleet, c, ONLINE) for c in cameras), 90, "cameras")
        await wait_for(lambda: logged(fleet, "json-view", ONLINE), 90, "the JSON view")
        await asyncio.sleep(2.0)
        listed = await asyncio.to_thread(tool, fleet, "nodes")
        assert all(n in listed.stdout for n in core + cameras), listed.stdout + listed.stderr
        chosen = await asyncio.to_thread(
            tool, fleet, "qos", "set", "--accuracy", "0.85", "--bandwidth", "10kbps"
        )
        assert "switch published" in chosen.stdout, chosen.stdout + chosen.stderr
        viewed = await asyncio.to_thread(
            tool, fleet, "sub", "edgebus/v1/lab/json/results/+", "--count", "1", "--timeout", "20"
        )
        assert '"type": "result"' in viewed.stdout, viewed.stdout + viewed.stderr
        fresh = await asyncio.to_thread(tool, fleet, "query", "results", "--fresh", "-f", "csv")
        assert fresh.returncode == 0 and "sensor-1" in fresh.stdout, fresh.stderr
        await asyncio.sleep(3.0)  # windows coded by the new model
        codes = await fleet.stop_all()
        report = fleet.audit()
    finally:
        fleet.kill_all()
    context = f"{report.summary()}\n{fleet.all_logs()}"
    assert all(code == 0 for code in codes.values()), f"{codes}\n{context}"
    assert "refused the publish" not in fleet.all_logs(), context
    assert report.ok and report.frames_awaiting == 0, context
    # Every role's store reached the global store: the sync rights are complete.
    assert {s.node for s in report.streams} >= set(core + cameras), context
    assert all(s.unsynced == 0 for s in report.streams), context
    for camera in report.cameras:
        assert camera.captured >= 5 and camera.results == camera.captured, context
    models = tool(fleet, "query", "frames", "--node", "sensor-1", "-f", "csv").stdout
    assert CHOSEN in models  # the sensor followed the switch


@pytest.mark.timeout(60)
def test_a_publish_the_acl_refuses_is_an_error(secured_mosquitto, tmp_path):
    fleet = Fleet(secured_mosquitto, tmp_path, passwords=PASSWORDS)
    # A camera may not speak for another camera (MQTT 5: PUBACK reason 135).
    message = '{"type": "heartbeat", "node": "camera-2", "role": "camera", "seq": 1}'
    env = {**ENV, "EDGEBUS_BROKER": fleet.url_for("camera-1")}
    refused = subprocess.run(
        [sys.executable, "-m", "edgebus", "pub", "edgebus/v1/lab/heartbeat/camera-2", "--json",
         message], capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip() == (
        "error: the broker refused the publish to edgebus/v1/lab/heartbeat/camera-2: "
        "not authorized (reason 135)"
    )
    allowed = subprocess.run(
        [sys.executable, "-m", "edgebus", "pub", "edgebus/v1/lab/heartbeat/camera-1", "--json",
         message.replace("camera-2", "camera-1")], capture_output=True, text=True, timeout=30,
        env=env,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
