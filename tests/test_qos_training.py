"""Tiny ECO / ECCD / AE / PCA trains, the pool builder, and the runtime codec's parity with
torch."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edgebus.clock import RealClock
from edgebus.messages import DriftAlert
from edgebus.nodes.model_follower import Loaded
from edgebus.nodes.qos_models import QosEncoder
from edgebus.topics import Topics

torch = pytest.importorskip("torch")

from edgebus.codecs.dense_ae import DenseAECodec  # noqa: E402
from edgebus.codecs.errors import ModelFileError  # noqa: E402
from edgebus.ml.dense_ae import Recipe, train_cloud_classifier, train_dense  # noqa: E402
from edgebus.ml.errors import DatasetError, TrainingError  # noqa: E402
from edgebus.ml.qos_data import ACTIVITIES, accelerometer, grey_shapes, load_split  # noqa: E402
from edgebus.ml.qos_pool import search_pool  # noqa: E402
from edgebus.qos.compression_search import QosRule, max_probes  # noqa: E402
from edgebus.qos.model_store import ModelPool, PoolError  # noqa: E402

TINY = Recipe(hidden=(16,), head_hidden=8, epochs=1, batch_size=64)
SMALL = Recipe(hidden=(32, 16), head_hidden=16, epochs=10, batch_size=32)


def test_data_sets_are_seeded_and_shaped():
    shapes = grey_shapes(0, 0, 20)
    assert shapes.x.shape == (20, 784) and shapes.x.min() >= 0 and shapes.x.max() <= 1
    assert np.array_equal(shapes.x, grey_shapes(0, 0, 20).x)
    assert list(shapes.y[:10]) == list(range(10))
    walks = accelerometer(0, 0, 12)
    assert walks.x.shape == (12, 384) and walks.class_names == ACTIVITIES
    assert not np.array_equal(walks.x, accelerometer(1, 0, 12).x)
    with pytest.raises(DatasetError, match="expected one of"):
        load_split("mnist", 0, 1, 1, 1)


def test_tiny_eco_and_eccd_train_and_beat_chance_on_accelerometer():
    torch.set_num_threads(1)  # tiny nets run slower with thread hand-offs on a shared box
    train, _, test = load_split("accelerometer", 0, 600, 0, 120)
    cloud, cloud_accuracy = train_cloud_classifier(train, test, SMALL)
    assert cloud_accuracy > 0.5  # six classes: chance is 0.17
    for mode in ("eco", "eccd", "ae", "pca"):
        trained = train_dense(mode, 8, train, test, SMALL, cloud)
        assert trained.scores.accuracy > 0.3, mode
        assert np.isfinite(trained.scores.psnr_db)
    with pytest.raises(TrainingError, match="cloud-only classifier"):
        train_dense("ae", 8, train, test, TINY)
    with pytest.raises(TrainingError, match="latent size"):
        train_dense("eco", 0, train, test, TINY)


def test_pool_search_exports_verified_bundles_the_runtime_codec_runs(tmp_path):
    pool, results = search_pool(tmp_path, "accelerometer", ["ECO", "ECCD"], 200, 30, TINY,
                                QosRule(tolerance=0.05))  # fmt: skip
    for result in results:
        assert result.models_trained <= max_probes(384)
        assert result.chosen_d is not None
    again = ModelPool.load(tmp_path)
    assert set(again.models) == set(pool.models)
    assert len(again.qos_map("ECO").qos_of) == results[0].models_trained
    test = accelerometer(0, 10_000, 4)
    for model_id in (f"accelerometer-eco-d{results[0].chosen_d}",
                     f"accelerometer-eccd-d{results[1].chosen_d}"):  # fmt: skip
        codec = DenseAECodec.from_bundle(again.bundle(model_id))
        data = codec.encode(test.x[0])
        assert len(data) == 2 * codec.latent_dim
        assert codec.classify(data).shape == (6,)
    eccd = DenseAECodec.from_bundle(again.bundle(f"accelerometer-eccd-d{results[1].chosen_d}"))
    assert eccd.reconstruct(eccd.encode(test.x[0])).shape == (384,)
    with pytest.raises(ModelFileError, match="frame of 3 bytes"):
        eccd.classify(b"abc")
    with pytest.raises(PoolError, match="not in the pool"):
        again.bundle("nope")
    # The CO classifier rides along as model "raw": raw frames are classified with it.
    raw = DenseAECodec.from_bundle(again.bundle("raw"))
    assert raw.configuration == "CO" and raw.frame_bytes == 384 * 2
    assert raw.classify(raw.encode(test.x[0])).shape == (6,)
    asyncio.run(_camera_feeds_the_drift_monitor(eccd, test.x))


class _Bus:
    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish(self, topic, message, qos=0, retain=False) -> None:
        self.published.append(message)


async def _camera_feeds_the_drift_monitor(eccd: DenseAECodec, frames: np.ndarray) -> None:
    """An ECCD camera decodes its own latents and alerts once its error crosses."""
    bus = _Bus()
    encoder = QosEncoder(bus, Topics("lab"), "cam-1", "coordinator", "accelerometer",  # type: ignore[arg-type]
                         RealClock(), drift_threshold=1e-9)  # fmt: skip
    encoder._loop = asyncio.get_running_loop()
    encoder.follower.current = Loaded(eccd.model_id, 1, "sha", eccd)
    coding = encoder.coding_for(0.0)
    assert coding.model_id == eccd.model_id
    for x in frames:
        units = await asyncio.to_thread(coding.units, x)
        assert units == [eccd.encode(x)]
    await asyncio.sleep(0.05)  # the observations were scheduled from the encoder thread
    assert encoder.drift is not None and encoder.drift.streams["cam-1"].frames == len(frames)
    alerts = [m for m in bus.published if isinstance(m, DriftAlert)]
    assert len(alerts) == 1 and alerts[0].model_id == eccd.model_id


def test_missing_pool_is_one_clear_line(tmp_path):
    with pytest.raises(PoolError, match="edgebus models search"):
        ModelPool.load(tmp_path / "none")
