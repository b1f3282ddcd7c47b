"""A node process loads what its role needs: a camera or an edge that runs never imports
the coordinator's solvers, the plotting layer, the embedded broker, torch, or the metrics
exporter when it serves no metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

NOT_FOR_DATA_PLANE = ("cvxpy", "matplotlib", "networkx", "amqtt", "torch", "edgebus.launch",
                      "prometheus_client",  # only where metrics_port is set
                      "sqlalchemy.dialects.postgresql",  # the global store's, 2 MB
                      "edgebus.coordinator", "edgebus.experiments")  # fmt: skip

ROLE_PARTS = {"camera": "edgebus.nodes.frame_sender", "edge": "edgebus.nodes.assembler"}

RUN_ROLE = textwrap.dedent(
    """
    import asyncio, json, sys
    from edgebus.broker.memory import MemoryBroker
    from edgebus.cli.fleet import role_class
    from edgebus.config import Settings

    async def main(role):
        broker = MemoryBroker("lean").start()
        settings = Settings(broker=broker.url, role=role, node_id=f"{role}-1",
                            store_enabled=False, frame_period_ms=100)
        node = role_class(role)(settings)
        task = asyncio.create_task(node.run(connect_timeout=5))
        await asyncio.sleep(1.5)  # capture, encode and send frames (or wait for them)
        node.stop()
        await task
        broker.stop()

    asyncio.run(main(sys.argv[1]))
    print(json.dumps(sorted(sys.modules)))
    """
)


@pytest.mark.parametrize("role", ["camera", "edge"])
def test_a_data_plane_node_loads_only_its_role(role):
    done = subprocess.run([sys.executable, "-c", RUN_ROLE, role], capture_output=True,
                          text=True, timeout=90)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert f"edgebus.nodes.{role}" in loaded  # it did run its role
    heavy = sorted(m for m in loaded
                   if any(m == p or m.startswith(p + ".") for p in NOT_FOR_DATA_PLANE))  # fmt: skip
    assert not heavy, f"a {role} process imported {heavy}"


@pytest.mark.parametrize("role", ["camera", "edge"])
def test_the_node_command_loads_only_its_role(role):
    """The command path itself, `edgebus node --role R` (as `up --processes` starts its
    children): it builds the node, then gives up on an unreachable broker; Python's import
    log lists everything it loaded on the way."""
    command = [sys.executable, "-X", "importtime", "-m", "edgebus", "node", "--role", role,
               "--broker", "mqtt://127.0.0.1:9", "--wait", "0.5"]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "EDGEBUS_STORE_ENABLED": "false"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, env=env)
    assert done.returncode == 1 and "error: cannot connect" in done.stderr, done.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
              if line.startswith("import time:")}  # fmt: skip
    # The role's own parts were built (the log omits modules loaded by import_module, as
    # edgebus.nodes loads each role's module).
    assert ROLE_PARTS[role] in loaded, sorted(m for m in loaded if m.startswith("edgebus"))
    heavy = sorted(m for m in loaded
                   if any(m == p or m.startswith(p + ".") for p in NOT_FOR_DATA_PLANE))  # fmt: skip
    assert not heavy, f"`edgebus node --role {role}` imported {heavy}"
