"""The replay benchmark's harness, short and untimed: pre-encoded frames from a replayer
process reach a real edge process (or the floor edge of bench_edge_floor.py) on a stock
Mosquitto, and every frame ends with exactly one outcome in the edge's store; the
replayer and the edge both stop."""

from __future__ import annotations

import pytest

from edgebus.bench.edge_floor import FloorEdgeProcess
from edgebus.bench.process_fleet import product_defaults
from edgebus.bench.replay import ReplayPlan, assembled, model_throughput, pre_encode
from edgebus.bench.replay_edge import EdgeUnderTest, run_step
from edgebus.config import Settings

pytestmark = pytest.mark.integration


def test_the_edge_under_test_runs_with_the_product_defaults():
    defaults = product_defaults()
    assert defaults["EDGEBUS_EDGE_CAPACITY_FPS"] == str(Settings().edge_capacity_fps)
    assert defaults["EDGEBUS_SYNC_INTERVAL_S"] == str(Settings().sync_interval_s)


def test_frames_are_coded_once_and_assembled_as_the_edge_does():
    bank = pre_encode(4)
    assert bank.codec == "pnc" and len(bank.frames) == 4
    frames = assembled(bank)
    assert [len(f.ordered_chunks()) for f in frames] == [len(c.units) for c in bank.frames]
    models = model_throughput(bank, batches=(1, 2), seconds=0.05)
    assert models.batch1_fps > 0 and models.best_batch in (1, 2)


@pytest.mark.timeout(240)
async def test_every_replayed_frame_ends_with_one_outcome(stock_mosquitto, tmp_path):
    plan = ReplayPlan(cameras=4, period_ms=500, duration_s=5.0)
    edge = EdgeUnderTest(stock_mosquitto.url, tmp_path, plan.period_ms)
    try:
        await edge.start()
        row = await run_step(edge, stock_mosquitto.url, plan, tmp_path)
    finally:
        code = await edge.stop()
    assert row["frames_sent"] == plan.cameras * plan.frames_per_camera == 40
    assert row["unsent"] == 0
    assert row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["results"] + row["dropped"] == row["frames_sent"]
    assert row["replayer_exit"] == 0  # it ended by itself once every frame was out
    assert code == 0 and not edge.running()


@pytest.mark.timeout(240)
async def test_the_floor_edge_classifies_and_records_every_replayed_frame(
    stock_mosquitto, tmp_path
):
    plan = ReplayPlan(cameras=4, period_ms=500, duration_s=5.0)
    edge = FloorEdgeProcess(stock_mosquitto.url, tmp_path, plan.site)
    try:
        await edge.start()
        threads_at_start = len(edge.thread_cpu_s())
        row = await run_step(edge, stock_mosquitto.url, plan, tmp_path)
    finally:
        edge.stop()
    assert row["frames_sent"] == 40 and row["unsent"] == 0
    # Every frame classified (a result row each, none dropped) and nothing recorded twice.
    assert (row["results"], row["dropped"], row["lost"], row["duplicated"]) == (40, 0, 0, 0), row
    assert row["edge_cpu_s"] > 0 and row["edge_classify_ms_per_result"] > 0
    assert threads_at_start >= 2  # its loop and the worker that decides
    assert not edge.running()
