"""The QoS orchestrator on Fashion-MNIST, the paper's data: the shipped pool on the real test
images, a sensor streaming them, `up` pointing its sensors at the pool's data set, and
`edgebus experiment qos` end to end (quick preset)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgebus.cli import app
from edgebus.codecs.dense_ae import DenseAECodec
from edgebus.config import Settings
from edgebus.fashion_mnist import ENV_VAR, fashion_test_set, read_fashion_mnist
from edgebus.launch_plan import sensor_source
from edgebus.nodes.sources import FlatSource, SourceError
from edgebus.qos.model_store import SHIPPED_ACCELEROMETER_POOL, SHIPPED_FASHION_POOL, ModelPool

runner = CliRunner()


def test_the_shipped_pool_scores_on_the_real_test_images_what_it_claims(fashion_mnist_dir):
    pool = ModelPool.load(SHIPPED_FASHION_POOL)
    assert pool.dataset == "fashion-mnist" and pool.dim == 784 and pool.raw_item_bytes == 1
    (search,) = pool.searches
    assert len(search["trials"]) <= math.ceil(math.log2(784)) + 1  # Algorithm 1's bound
    images, labels = read_fashion_mnist(fashion_mnist_dir, train=False)
    x = images[:2000].reshape(2000, -1).astype(np.float32) / 255.0
    y = labels[:2000]
    for model_id in (*pool.models, "raw"):
        codec = DenseAECodec.from_bundle(pool.bundle(model_id))
        predicted = [int(np.argmax(codec.classify(codec.encode(row)))) for row in x]
        accuracy = float(np.mean(np.array(predicted) == y))
        # The pool's figure is on a held-out part of the training file; the test images
        # agree within sampling error (2,000 images: s.e. ~0.007), float16 latents included.
        assert abs(accuracy - pool.get(model_id).accuracy) < 0.03, (model_id, accuracy)
    chosen = pool.get(f"fashion-mnist-eco-d{search['chosen_d']}")
    assert chosen.accuracy >= search["target"] - pool.rule.tolerance


def test_a_fashion_sensor_streams_the_idx_test_images(fashion_mnist_dir):
    images, labels = read_fashion_mnist(fashion_mnist_dir, train=False)
    source = FlatSource("fashion-mnist")
    for frame_id in (0, 1, 9999, 10000):
        frame = source.frame(frame_id)
        i = frame_id % 10000
        assert frame.label == labels[i]
        np.testing.assert_array_equal(frame.image, images[i].reshape(-1) / np.float32(255))


def test_a_missing_data_set_stops_the_source_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(SourceError) as caught:
        FlatSource("fashion-mnist")
    message = str(caught.value)
    assert "\n" not in message and "t10k-images-idx3-ubyte" in message
    assert str(tmp_path) in message
    with pytest.raises(Exception, match="t10k-images"):
        fashion_test_set()


def test_up_points_its_sensors_at_the_pools_data_set(tmp_path, monkeypatch):
    from edgebus.qos import model_store

    settings = Settings(data_dir=str(tmp_path))
    monkeypatch.setattr(model_store, "fashion_mnist_installed", lambda: True)
    assert sensor_source(settings) == "fashion-mnist"
    monkeypatch.setattr(model_store, "fashion_mnist_installed", lambda: False)
    assert sensor_source(settings) == "accelerometer"
    configured = dataclasses.replace(settings, qos_pool=str(SHIPPED_FASHION_POOL))
    assert sensor_source(configured) == "fashion-mnist"
    assert sensor_source(dataclasses.replace(settings, qos_pool="off")) == "accelerometer"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pool.json").write_text("{")
    # The coordinator reports a broken pool; the sensor still starts.
    assert sensor_source(dataclasses.replace(settings, qos_pool=str(broken))) == "accelerometer"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(240)
def test_experiment_qos_quick_on_fashion_mnist(fashion_mnist_dir, tmp_path):
    out = tmp_path / "qos"
    result = runner.invoke(
        app,
        ["experiment", "qos", "--preset", "quick", "--out", str(out), "--changes", "4",
         "--pool", str(SHIPPED_ACCELEROMETER_POOL)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Fig. 11" in result.output and "Table 4" in result.output
    accuracy = _rows(out / "accuracy_by_rate.csv")
    assert [r["configuration"] for r in accuracy[:1]] == ["CO"]
    by_config: dict[str, list[dict[str, str]]] = {}
    for row in accuracy[1:]:
        by_config.setdefault(row["configuration"], []).append(row)
    assert set(by_config) == {"ECO", "ECCD", "AE", "PCA"}
    for rows in by_config.values():
        # The paper's five rates; 95 % of 784 is its d = 39.
        assert [int(r["d"]) for r in rows] == [706, 392, 196, 39, 4]
        assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    searches = {r["strategy"]: r for r in _rows(out / "search_cost.csv")}
    assert int(searches["binary"]["models"]) <= math.ceil(math.log2(784)) + 1
    assert int(searches["10% step"]["models"]) == 10
    jobs = {r["configuration"]: r for r in _rows(out / "job_cost.csv")}
    assert int(jobs["CO"]["payload_bytes"]) == 100 * 784  # uint8 pixels
    for configuration in ("ECO", "ECCD"):
        job = jobs[configuration]
        assert int(job["d"]) == 39 and int(job["payload_bytes"]) == 100 * 2 * 39  # float16
        saving = 1 - int(job["message_bytes"]) / int(jobs["CO"]["message_bytes"])
        assert float(job["saving_pct"]) == pytest.approx(100 * saving)
        assert float(job["transfer_ms"]) < float(jobs["CO"]["transfer_ms"])
    assert float(jobs["ECCD"]["decode_ms"]) > 0 and float(jobs["ECO"]["decode_ms"]) == 0
    live = _rows(out / "live_switching.csv")
    assert len(live) == 4 and all(not math.isnan(float(r["latency_ms"])) for r in live)
    pool = json.loads((out / "pool" / "pool.json").read_text())
    assert pool["dataset"] == "fashion-mnist" and len(pool["models"]) == 10
    assert (out / "qos.png").stat().st_size > 10_000


def test_a_sensor_sends_raw_when_the_pool_is_of_another_data_set(caplog):
    """An accelerometer sensor told to use a Fashion-MNIST model (784 values in, its items
    have 384) cannot code with it: one error line naming both, and raw frames."""
    import asyncio

    from edgebus.clock import RealClock
    from edgebus.nodes.model_follower import RAW, Loaded
    from edgebus.nodes.qos_models import QosEncoder
    from edgebus.topics import Topics

    pool = ModelPool.load(SHIPPED_FASHION_POOL)
    model = DenseAECodec.from_bundle(pool.bundle("fashion-mnist-eco-d3"))
    assert model.input_dim == 784

    async def code_twice() -> list[str]:
        encoder = QosEncoder(None, Topics("lab"), "sensor-1", "coordinator",  # type: ignore[arg-type]
                             "accelerometer", RealClock())  # fmt: skip
        encoder.follower.current = Loaded(model.model_id, 1, "sha", model)
        return [encoder.coding_for(0.0).model_id for _ in range(2)]

    assert asyncio.run(code_twice()) == [RAW, RAW]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "fashion-mnist-eco-d3 takes 784 values" in errors[0]
    assert "accelerometer gives 384" in errors[0]
