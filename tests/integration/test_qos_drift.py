"""Drift monitor (paper Eq. 2) on the bus: a stream whose reconstructions degrade raises one
DriftAlert on model/drift, which the orchestrator records and hands to its retrain hook."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.clock import RealClock
from edgebus.coordinator.orchestrator import Orchestrator
from edgebus.messages import DriftAlert
from edgebus.nodes.drift_monitor import DriftConfigError, DriftMonitor, reconstruction_error
from edgebus.qos.compression_search import QosRule
from edgebus.qos.model_store import ModelPool

pytestmark = pytest.mark.integration


def test_reconstruction_error_is_the_frame_mse():
    assert reconstruction_error(np.zeros(4), np.full(4, 0.5)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="reconstruction of 3 values for an input of 4"):
        reconstruction_error(np.zeros(4), np.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"threshold": 0.0}, "drift threshold"), ({"threshold": 1.0, "smoothing": 0.0}, "smoothing"),
     ({"threshold": 1.0, "rearm": 1.5}, "re-arm")],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(DriftConfigError, match=message):
        DriftMonitor(None, None, **kwargs)  # type: ignore[arg-type]


async def test_drift_alert_reaches_the_orchestrator_once_per_crossing(actor_broker_url, tmp_path):
    def bus(name: str) -> Bus:
        options = BusOptions(site="d", node_id=f"{name}-{uuid.uuid4().hex[:6]}")
        return Bus(parse_broker_url(actor_broker_url), options)

    coord, edge = bus("coord"), bus("edge")
    for b in (coord, edge):
        await b.start(5)
    retrains: list[DriftAlert] = []

    async def retrain(alert: DriftAlert) -> None:
        retrains.append(alert)

    pool = ModelPool(tmp_path, "toy", 4, 1, 0.9, QosRule())
    orchestrator = Orchestrator(coord, coord.topics, coord.node_id, pool, RealClock(),
                                on_drift=retrain)  # fmt: skip
    watch = await orchestrator.watch_drift()
    monitor = DriftMonitor(edge, edge.topics, threshold=0.05, smoothing=0.5)
    x = np.full(16, 0.5)
    try:
        sent = []
        for noise in [0.0] * 5 + [0.4] * 5 + [0.0] * 10 + [0.4] * 5:
            sent.append(await monitor.observe("cam-1", "toy-eccd-d4", x, x + noise))
        alerts = [a for a in sent if a is not None]
        # Two degradations separated by a recovery: two alerts, not one per bad frame.
        assert len(alerts) == 2 and monitor.alerts == 2
        assert alerts[0].error > 0.05 and alerts[0].model_id == "toy-eccd-d4"
        for _ in range(100):
            if len(retrains) == 2:
                break
            await asyncio.sleep(0.02)
        assert [a.stream for a in orchestrator.drift_alerts] == ["cam-1", "cam-1"]
        assert retrains == orchestrator.drift_alerts
    finally:
        watch.cancel()
        for b in (coord, edge):
            await b.close()
