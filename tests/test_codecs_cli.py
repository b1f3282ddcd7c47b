"""Step-2 CLI commands: bad flag values give a one-line error and exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from edgebus.cli import app

runner = CliRunner()


def test_bad_sizes_flag() -> None:
    result = runner.invoke(app, ["bench", "codecs", "--sizes", "64,abc"])
    assert result.exit_code == 2
    assert "comma-separated integers" in result.output


def test_missing_assets_folder(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    result = runner.invoke(app, ["experiment", "pnc-rate", "--assets", str(missing)])
    assert result.exit_code == 2
    assert f"--assets {missing}" in result.output and "Traceback" not in result.output


def test_assets_folder_without_models(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "codecs", "--assets", str(tmp_path), "--images", "1"])
    assert result.exit_code == 2
    assert "no such file" in result.output and "Traceback" not in result.output


def test_train_pnc_without_classifier(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", "pnc", "--out", str(tmp_path), "--classifiers", str(tmp_path), "--no-progress"],
    )
    assert result.exit_code == 2
    assert "train classifiers" in result.output


def test_experiment_scheduling_bad_parts() -> None:
    result = runner.invoke(app, ["experiment", "scheduling", "--parts", "ents,bogus"])
    assert result.exit_code == 2
    assert "--parts 'bogus': expected some of ents, jstsh, edgesplit" in result.output
