"""`edgebus qos set|show|diag` and `edgebus models list` on a small pool: answers, and
one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgebus.cli import app
from edgebus.cli.qos import parse_rate
from edgebus.qos.compression_search import QosRule
from edgebus.qos.model_store import ModelPool, model_id_for

runner = CliRunner()


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    root = tmp_path / "pool"
    pool = ModelPool(root, "toy", 784, 1, 0.9, QosRule(tolerance=0.0, step=0.05))
    for configuration, d, accuracy, psnr in (("ECO", 8, 0.7, 14.0), ("ECO", 32, 0.85, 16.0),
                                             ("ECCD", 16, 0.8, 18.0)):  # fmt: skip
        pool.add(model_id_for("toy", configuration, d), configuration, d, accuracy, psnr, 0.1,
                 {"encoder.onnx": bytes([d])})  # fmt: skip
    pool.save()
    return root


def one_line_error(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines


@pytest.mark.parametrize(
    ("text", "bps"), [("200kbps", 200e3), ("1.5Mbps", 1.5e6), ("9600", 9600.0), ("2 kbit/s", 2e3)]
)
def test_rates_parse(text, bps):
    assert parse_rate(text) == bps


def test_qos_set_dry_run_prints_the_model_and_why(pool):
    # Raw frames need 784 B * 8 * 2 fps = 12,544 bit/s, so 10 kbit/s forces compression.
    result = runner.invoke(app, ["qos", "set", "--accuracy", "0.8", "--bandwidth", "10kbps",
                                 "--dry-run", "--pool", str(pool)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model toy-eco-d32 (ECO, d = 32)" in result.output
    assert "meets the target" in result.output and "smallest ECO latent" in result.output
    raw = runner.invoke(app, ["qos", "set", "--accuracy", "0.8", "--bandwidth", "1Mbps",
                              "--dry-run", "--pool", str(pool)])  # fmt: skip
    assert "model raw (CO" in raw.output and "no compression is needed" in raw.output
    eccd = runner.invoke(app, ["qos", "set", "--accuracy", "0.7", "--bandwidth", "10kbps",
                               "--image-quality", "17", "--dry-run",
                               "--pool", str(pool)])  # fmt: skip
    assert "toy-eccd-d16 (ECCD" in eccd.output


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--bandwidth", "200xyz"], "--bandwidth: expected a bit rate such as 200kbps"),
        (["--bandwidth", "fast"], "got 'fast'"),
    ],
)
def test_qos_set_bad_bandwidth_is_one_line(pool, args, text):
    result = runner.invoke(
        app, ["qos", "set", "--accuracy", "0.8", *args, "--dry-run", "--pool", str(pool)]
    )
    one_line_error(result, text)


def test_qos_set_bad_accuracy_is_refused(pool):
    result = runner.invoke(app, ["qos", "set", "--accuracy", "1.5", "--bandwidth", "1kbps",
                                 "--dry-run", "--pool", str(pool)])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--accuracy" in result.output


def test_missing_pool_is_one_line(tmp_path):
    missing = tmp_path / "none"
    for args in (["models", "list"], ["qos", "diag"]):
        one_line_error(runner.invoke(app, [*args, "--pool", str(missing)]), "no pool.json")


def test_malformed_pool_is_one_line(tmp_path):
    (tmp_path / "pool.json").write_text('{"dataset": "toy"}')
    one_line_error(runner.invoke(app, ["models", "list", "--pool", str(tmp_path)]), "malformed")


def test_models_list_and_diag(pool):
    listed = runner.invoke(app, ["models", "list", "--pool", str(pool)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for model_id in ("toy-eco-d8", "toy-eco-d32", "toy-eccd-d16"):
        assert model_id in listed.output
    diag = runner.invoke(app, ["qos", "diag", "--pool", str(pool)], env={"COLUMNS": "200"})
    assert diag.exit_code == 0, diag.output
    assert "P for ECO" in diag.output and "QoS range (Eq. 6): 0.150" in diag.output
    assert "d 8 -> 32 (+24 features)" in diag.output


def test_qos_show_without_a_switch_is_one_line(mosquitto_url):
    result = runner.invoke(app, ["qos", "show", "--broker", mosquitto_url, "--wait", "0.3"],
                           env={"EDGEBUS_SITE": "qos-show-empty"})  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no model/switch retained on site qos-show-empty" in result.output


def test_qos_show_bad_broker_url_is_one_line():
    result = runner.invoke(app, ["qos", "show", "--broker", "ftp://nowhere"])
    assert "Traceback" not in result.output and result.exit_code != 0
    assert result.output.startswith("error: ")


@pytest.mark.parametrize(
    ("installed", "dataset"), [(True, "fashion-mnist"), (False, "accelerometer")]
)
def test_shipped_pool_answers_out_of_the_box(tmp_path, monkeypatch, installed, dataset):
    """With no pool configured or built, the default is the shipped Fashion-MNIST pool where
    its images are installed, else the accelerometer pool; either answers `qos set`, and
    every model in it loads (sha256 checked) and codes a frame to 2d bytes."""
    import numpy as np

    from edgebus.codecs.dense_ae import DenseAECodec
    from edgebus.qos import model_store

    monkeypatch.chdir(tmp_path)  # no local pool here: a shipped one is used
    monkeypatch.setattr(model_store, "fashion_mnist_installed", lambda: installed)
    env = {"EDGEBUS_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = runner.invoke(app, ["qos", "set", "--accuracy", "0.85", "--bandwidth", "2kbps",
                                 "--dry-run"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"model {dataset}-eco-d" in result.output and "meets the target" in result.output
    shipped = ModelPool.load(model_store.resolve_pool("", str(tmp_path)))
    assert shipped.dataset == dataset and shipped.get("raw").configuration == "CO"
    for model_id in shipped.models:
        codec = DenseAECodec.from_bundle(shipped.bundle(model_id))  # sha256 checked
        z = codec.encode(np.zeros(shipped.dim, np.float32))
        assert len(z) == 2 * shipped.models[model_id].d
    eccd = runner.invoke(app, ["qos", "set", "--accuracy", "0.8", "--bandwidth", "2kbps",
                               "--image-quality", "12", "--dry-run"], env=env)  # fmt: skip
    one_line_error(eccd, "the model pool has no ECCD models")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--broker", "ftp://x"], "--broker: broker URL 'ftp://x' has scheme 'ftp'"),
        (["--data", "foo"], "--data: expected one of fashion-mnist, accelerometer, shapes28"),
        (["--preset", "huge"], "--preset: expected one of quick, full"),
        (["--bandwidth", "lots"], "--bandwidth: expected a bit rate"),
    ],
)
def test_experiment_qos_bad_flags_are_one_line(pool, tmp_path, args, text):
    result = runner.invoke(
        app, ["experiment", "qos", "--pool", str(pool), "--out", str(tmp_path / "o"), *args]
    )
    one_line_error(result, text)
