"""The site broker's bridge configuration: what goes up, what comes down, what stays."""

from __future__ import annotations

import subprocess

import pytest

from edgebus.bench.mosquitto import mosquitto_binary
from edgebus.bench.processes import terminate
from edgebus.broker.address import TlsOptions, parse_broker_url
from edgebus.broker.bridge import BOTH, DOWN, LOCAL_ONLY, SITE_ROUTES, UP, SiteBridge
from edgebus.broker.matching import topic_matches
from edgebus.broker.ports import free_port, wait_for_port
from edgebus.topics import Topics

pytestmark = pytest.mark.timeout(30)


def routes(text: str) -> dict[str, tuple[str, int]]:
    found = {}
    for line in text.splitlines():
        if line.startswith("topic "):
            _, pattern, direction, qos = line.split()
            found[pattern] = (direction, int(qos))
    return found


def direction_of(topic: str, text: str) -> str | None:
    hits = [d for pattern, (d, _) in routes(text).items() if topic_matches(pattern, topic)]
    assert len(hits) <= 1, f"{topic} matches more than one bridge route"
    return hits[0] if hits else None


def test_each_topic_crosses_the_bridge_the_way_it_must():
    text = SiteBridge("site-a", parse_broker_url("mqtt://cloud:1883"), namespace="plant").render()
    topics = Topics("plant")
    assert direction_of(topics.result("edge-1"), text) == UP
    assert direction_of(topics.sync("edge-1"), text) == UP
    assert direction_of(topics.sync_ack("edge-1"), text) == DOWN
    assert direction_of(topics.status("camera-1"), text) == UP
    assert direction_of(topics.model_switch(), text) == DOWN
    assert direction_of(topics.sched_policy("camera-1"), text) == DOWN
    assert direction_of(topics.request("coordinator", "model"), text) == BOTH
    assert direction_of(topics.reply("camera-1", "r1"), text) == BOTH
    # The heavy traffic never leaves the site, nor do other namespaces.
    assert direction_of(topics.frame_chunk("camera-1", 7, 0), text) is None
    assert direction_of(topics.frame_end("camera-1", 7), text) is None
    assert direction_of(topics.outcome("camera-1"), text) is None
    assert direction_of(Topics("lab").result("edge-1"), text) is None
    assert {f"{topics.base}/{p}" for p in LOCAL_ONLY}.isdisjoint(routes(text))
    assert len(routes(text)) == len(SITE_ROUTES)


def test_credentials_tls_and_session_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    cloud = parse_broker_url("mqtts://site-a:s3cret@cloud.example:8883", TlsOptions(str(ca)))
    text = SiteBridge("site-a", cloud, password_file="/etc/mosquitto/users", mqtt5=False).render()
    lines = set(text.splitlines())
    assert {"address cloud.example:8883", "remote_username site-a", "remote_password s3cret",
            f"bridge_cafile {ca}", "bridge_protocol_version mqttv311",
            "cleansession false", "local_cleansession false", "allow_anonymous false",
            "password_file /etc/mosquitto/users"} <= lines  # fmt: skip


@pytest.mark.parametrize(
    "name, url, message",
    [
        ("a/b", "mqtt://cloud", "must not contain"),
        ("a", "memory://x", "network broker"),
    ],
)
def test_bad_settings_are_one_line(name, url, message):
    with pytest.raises(ValueError, match=message):
        SiteBridge(name, parse_broker_url(url))


def test_mosquitto_starts_with_the_configuration(tmp_path):
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("no mosquitto binary")
    port = free_port()
    bridge = SiteBridge("site-a", parse_broker_url("mqtt://127.0.0.1:9"), listen_port=port)
    conf = tmp_path / "site.conf"
    conf.write_text(bridge.render())
    # An unknown or malformed option makes mosquitto exit at once with the line at fault.
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, timeout_s=5)
        assert process.poll() is None
    finally:
        # A bridge stuck connecting can outlast SIGTERM on a loaded machine: then SIGKILL.
        terminate(process)
        errors = process.stderr.read() if process.stderr else ""
    # Configuration errors read "Error: ..." and "Error found at <file>:<line>". The cloud
    # here is a closed port, so "Error creating bridge: ..." may come too: that is the
    # connection failing, as it should, not the configuration.
    assert "Error:" not in errors and "Error found" not in errors, errors
