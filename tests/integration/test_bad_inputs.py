"""Bad input, across the subcommands, as a user types it: one `error:` line on stderr,
exit 2 for usage and 1 at run time, no traceback and no exit 0.

Each case runs `python -m edgebus` in a fresh directory with no EDGEBUS_* environment and
an unreachable default broker, so nothing here depends on a running service."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOWHERE = "mqtt://127.0.0.1:9"  # nothing listens on the discard port
USAGE, RUNTIME = 2, 1
STATUS = '{"type": "status", "node": "n", "role": "edge", "state": "online"}'

CASES: list[tuple[list[str], int, str]] = [
    # the command itself
    (["frob"], USAGE, "No such command"),
    (["--bogus"], USAGE, "No such option"),
    # node
    (["node"], USAGE, "role"),
    (["node", "--role", "king"], USAGE, "king"),
    (["node", "--role", "edge", "--wait", "x"], USAGE, "--wait"),
    (["node", "--role", "edge", "--broker", "http://x:1"], USAGE, "scheme"),
    (["node", "--role", "edge", "--broker", NOWHERE, "--wait", "1"], RUNTIME, "127.0.0.1:9"),
    (["node", "--role", "camera", "--codec", "nope", "--broker", NOWHERE], USAGE, "nope"),
    (["node", "--role", "edge", "--config", "missing.toml"], USAGE, "missing.toml"),
    (["node", "--role", "edge", "--heartbeat", "nan"], USAGE, "heartbeat"),
    (["node", "--role", "edge", "--heartbeat", "-1"], USAGE, "heartbeat"),
    # up
    (["up", "--cameras", "x"], USAGE, "--cameras"),
    (["up", "--codec", "pnc:nope", "--duration", "1"], USAGE, "nope"),
    (["up", "--link", "nope.csv", "--duration", "1"], USAGE, "nope.csv"),
    (["up", "--offload", "dqn", "--bucket", "3", "--duration", "1"], USAGE, "DQN"),
    (["up", "--offload", "sometimes"], USAGE, "sometimes"),
    (["up", "--kill-edge", "5", "--duration", "1"], USAGE, "--kill-edge"),
    (["up", "--broker", "ftp://x"], USAGE, "scheme"),
    (["up", "--duration", "abc"], USAGE, "--duration"),
    (["up", "--classifier", "hotdog", "--duration", "1"], USAGE, "hotdog"),
    (["up", "--source", "folder:no-such-photos", "--duration", "1"], USAGE, "no-such-photos"),
    (["node", "--role", "edge", "--classifier", "mine.json"], USAGE, "mine.json"),
    (["node", "--role", "camera", "--zone", "a/b", "--broker", NOWHERE], USAGE, "zone"),
    (["node", "--role", "edge", "--metrics-port", "70000"], USAGE, "metrics"),
    # photos
    (["photos"], USAGE, "OUT"),
    (["photos", "/proc/no-photos-here"], RUNTIME, "/proc/no-photos-here"),
    # broker
    (["broker", "--port", "x"], USAGE, "--port"),
    (["broker", "--port", "70000"], USAGE, "--port"),
    (["broker", "--auth", "no-such-users-file"], USAGE, "no-such-users-file"),
    (["broker", "--acl", "unknown.toml"], USAGE, "--auth"),
    (["broker", "--auth", "binary.bin", "--acl", "no-such-acl.toml"], USAGE, "no-such-acl.toml"),
    # broker-config
    (["broker-config", "--name", "a"], USAGE, "--cloud"),
    (["broker-config", "--cloud", "ftp://x", "--name", "a"], USAGE, "scheme"),
    (["broker-config", "--cloud", "mqtt://x", "--name", "a/b"], USAGE, "a/b"),
    (["broker-config", "--cloud", "mqtt://x", "--name", "a", "--listen", "x"], USAGE, "--listen"),
    (["broker-config", "--cloud", "memory://x", "--name", "a"], USAGE, "network broker"),
    (
        ["broker-config", "--cloud", "mqtt://x", "--name", "a", "-o", "/proc/x/y"],
        RUNTIME,
        "/proc/x/y",
    ),
    # json-view
    (["json-view", "--kind", "frames"], USAGE, "frames"),
    (["json-view", "--broker", "ftp://x"], USAGE, "scheme"),
    (["json-view", "--broker", NOWHERE, "--wait", "1"], RUNTIME, "127.0.0.1:9"),
    # sub
    (["sub"], USAGE, "pattern"),
    (["sub", "a/#/b", "--broker", NOWHERE], USAGE, "a/#/b"),
    (["sub", "a/b#", "--broker", NOWHERE], USAGE, "a/b#"),
    (["sub", "x/#", "--count", "x"], USAGE, "--count"),
    (["sub", "x/#", "--broker", NOWHERE, "--timeout", "1"], RUNTIME, "127.0.0.1:9"),
    (["sub", "x/#", "--broker", "mqtt://:0"], USAGE, "port"),
    # pub
    (["pub"], USAGE, "topic"),
    (["pub", "x", "--json", "{bad"], USAGE, "--json"),
    (["pub", "x", "--json", "[]"], USAGE, "--json"),
    (["pub", "x", "--json", '"text"'], USAGE, "JSON object"),
    (["pub", "x", "--json", '{"type": "no_such_type"}'], USAGE, "no_such_type"),
    (["pub", "x", "--json", '{"type": "qos_request"}'], USAGE, "requester"),
    (["pub", "x/+", "--json", STATUS], USAGE, "x/+"),
    (["pub", "x", "--qos", "3", "--json", STATUS], USAGE, "--qos"),
    (["pub", "x", "--json", STATUS, "--broker", NOWHERE], RUNTIME, "127.0.0.1:9"),
    # nodes
    (["nodes", "--wait", "0"], USAGE, "--wait"),
    (["nodes", "--wait", "x"], USAGE, "--wait"),
    (["nodes", "--broker", NOWHERE], RUNTIME, "127.0.0.1:9"),
    (["nodes", "--broker", "mqtt://"], USAGE, "host"),
    (["nodes", "--broker", "mqtt://no-such-host.invalid:1883"], RUNTIME, "cannot resolve host"),
    # query
    (["query"], USAGE, "table"),
    (["query", "rows"], USAGE, "rows"),
    (["query", "results", "--since", "nope"], USAGE, "--since"),
    (["query", "results", "--format", "xml"], USAGE, "xml"),
    (["query", "results", "--store-url", "oracle://x"], USAGE, "oracle"),
    # audit
    (["audit", "--data-dir", "no-such-dir"], USAGE, "no-such-dir"),
    # bench
    (["bench", "sync", "--rows", "5"], USAGE, "--rows"),
    (["bench", "sync", "--targets", "mysql"], USAGE, "mysql"),
    (["bench", "bus", "--clients", "telnet"], USAGE, "telnet"),
    (["bench", "codecs", "--sizes", "x"], USAGE, "x"),
    # train, experiment
    (["train", "dqn", "--rate", "x", "--out", "o"], USAGE, "--rate"),
    (["train", "dqn", "--trace", "wobbly", "--out", "o"], USAGE, "wobbly"),
    (["experiment", "scheduling", "--parts", "magic", "--out", "o"], USAGE, "magic"),
    (["experiment", "offload", "--codecs", "gif", "--out", "o"], USAGE, "gif"),
    (["experiment", "offload", "--periods", "x", "--out", "o"], USAGE, "x"),
    (["experiment", "offloading", "--dqn-folder", "no-dqns", "--out", "o"], USAGE, "no-dqns"),
    # qos, models
    (["qos", "set", "--accuracy", "x"], USAGE, "--accuracy"),
    (["qos", "set", "--accuracy", "0.9", "--bandwidth", "fast"], USAGE, "fast"),
    (
        ["qos", "set", "--accuracy", "0.9", "--bandwidth", "1kbps", "--broker", NOWHERE],
        RUNTIME,
        "127.0.0.1:9",
    ),
    (["qos", "show", "--broker", NOWHERE], RUNTIME, "127.0.0.1:9"),
    (["models", "list", "--pool", "no-such-pool"], USAGE, "no-such-pool"),
    # files that are not what they claim (written by the `files` fixture)
    (["node", "--role", "edge", "--config", "bad.toml"], USAGE, "bad.toml"),
    (["node", "--role", "edge", "--config", "unknown.toml"], USAGE, "unknown key"),
    (["node", "--role", "edge", "--config", "adir"], USAGE, "adir"),
    (["up", "--config", "unknown.toml"], USAGE, "unknown key"),
    (["query", "results", "--config", "bad.toml"], USAGE, "bad.toml"),
    (["audit", "--data-dir", "binary.bin"], USAGE, "binary.bin"),
    (["nodes", "--config", "binary.bin"], USAGE, "binary.bin"),
    (["broker", "--auth", "binary.bin", "--acl", "bad.toml"], USAGE, "bad.toml"),
    # values out of range or not numbers
    (["sub", "x/#", "--timeout", "-1"], USAGE, "--timeout"),
    (["sub", "x/#", "--count", "-3"], USAGE, "--count"),
    (["node", "--role", "edge", "--wait", "-1"], USAGE, "--wait"),
    (["qos", "set", "--accuracy", "1.5", "--bandwidth", "1kbps"], USAGE, "--accuracy"),
    (
        ["qos", "set", "--accuracy", "0.9", "--bandwidth", "1kbps", "--image-quality", "-5"],
        USAGE,
        "--image-quality",
    ),
    (["query", "results", "--node", "a/#"], USAGE, "a/#"),
    (["query", "results", "--since", "-5m"], USAGE, "--since"),
    (
        ["pub", "x", "--json", '{"type": "qos_request", "requester": "r", "accuracy": NaN}'],
        USAGE,
        "accuracy",
    ),
    (
        [
            "pub",
            "x",
            "--json",
            '{"type": "heartbeat", "node": "n", "role": "edge", "seq": 100000000000000000000000}',
        ],
        USAGE,
        "seq",
    ),
    (["pub", "x\u0001y", "--json", STATUS], USAGE, "topic"),
    (["up", "--cameras", "-2"], USAGE, "--cameras"),
    (["up", "--edges", "0"], USAGE, "--edges"),
    (["up", "--duration", "-1"], USAGE, "--duration"),
    (["up", "--rate", "2", "--offload", "mdp"], USAGE, "rate"),
    (["experiment", "scheduling", "--quick", "--out", "/proc/nope"], RUNTIME, "/proc/nope"),
    (["experiment", "pnc-rate", "--images", "0", "--out", "o"], USAGE, "--images"),
    (["train", "costs", "--k", "0", "--out", "o.npz"], USAGE, "--k"),
    (["train", "costs", "--data", "mnist", "--out", "o.npz"], USAGE, "mnist"),
    (["train", "classifiers", "--data", "cifar", "--out", "o"], USAGE, "cifar"),
    (["train", "imagenet", "--out", "/proc/no-models-here"], RUNTIME, "/proc/no-models-here"),
    (["train", "pnc", "--data", "cifar", "--out", "o"], USAGE, "cifar"),
    (["experiment", "pnc-rate", "--data", "cifar", "--out", "o"], USAGE, "cifar"),
    (["experiment", "qos", "--data", "mnist", "--out", "o"], USAGE, "mnist"),
    (["experiment", "offloading", "--data", "mnist", "--out", "o"], USAGE, "mnist"),
    (["experiment", "qos", "--preset", "huge", "--out", "o"], USAGE, "huge"),
    (
        ["node", "--role", "camera", "--codec", "qos", "--source", "fashion", "--broker", NOWHERE],
        USAGE,
        "fashion",
    ),
    (["bench", "bus", "--repeats", "0"], USAGE, "--repeats"),
    (["bench", "sync", "--nodes", "x"], USAGE, "x"),
    (["models", "search", "--dataset", "mnist-ish", "--out", "o"], USAGE, "mnist-ish"),
    (["broker-user", "adir", "alice"], USAGE, "adir"),
    (["broker-user", "binary.bin", "alice"], USAGE, "binary.bin"),
    # acl
    (["acl"], USAGE, "members"),
    (["acl", "camera-1"], USAGE, "NODE=ROLE"),
    (["acl", "camera-1=king"], USAGE, "king"),
    (["acl", "cam 1=camera"], USAGE, "cam 1"),
    (["acl", "a/b=edge"], USAGE, "a/b"),
    (["acl", "e=edge", "e=cloud"], USAGE, "twice"),
    (["acl", "e=edge", "--format", "yaml"], USAGE, "yaml"),
    (["acl", "e=edge", "--site", "a/b"], USAGE, "a/b"),
    (["acl", "e=edge", "--site", "+"], USAGE, "site"),
    # the default fleet's sensor streams
    (["up", "--sensors", "-1"], USAGE, "--sensors"),
    (["up", "--sensors", "many"], USAGE, "--sensors"),
]


@pytest.fixture(autouse=True)
def files(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "bad.toml").write_text("site = \n")
    (tmp_path / "unknown.toml").write_text("heartbeat = 1\n")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)))
    (tmp_path / "adir").mkdir()


def run(args: list[str], cwd) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    # A node logs what it does (here: its retries) at info; this test reads errors only.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}
    env["EDGEBUS_LOG_LEVEL"] = "error"
    if "--broker" not in args:
        env["EDGEBUS_BROKER"] = NOWHERE
    return subprocess.run([sys.executable, "-m", "edgebus", *args], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=45)  # fmt: skip


@pytest.mark.parametrize(("args", "code", "names"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_error_line(args, code, names, tmp_path):
    result = run(args, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert names.lower() in lines[0].lower(), lines[0]
