"""The AsyncAPI document checked by the official parser, @asyncapi/parser from npm, pinned
in tools/asyncapi-check (installed by `make setup`): a freshly generated document parses
with no error, and a broken one does not, so the check can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edgebus.cli.asyncapi_cmd import render
from tests.conftest import missing_service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CHECK = Path(__file__).resolve().parents[2] / "tools" / "asyncapi-check"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        missing_service("node is needed to run the AsyncAPI parser")
    if not (CHECK / "node_modules" / ".package-lock.json").is_file():
        missing_service(
            "the AsyncAPI parser is not installed: make setup (npm ci in tools/asyncapi-check)"
        )
    return subprocess.run(
        [node, str(CHECK / "validate.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


@pytest.mark.parametrize(("fmt", "site"), [("yaml", None), ("json", "lab")])
def test_the_generated_document_parses_without_errors(tmp_path, fmt, site):
    path = tmp_path / f"asyncapi.{fmt}"
    path.write_text(render(fmt, site), encoding="utf-8")
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: " in result.stdout and "AsyncAPI 3.0.0" in result.stdout


def _broken(tmp_path: Path, name: str, change) -> Path:
    document = yaml.safe_load(render("yaml"))
    change(document)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _missing_message(doc):
    doc["channels"]["status"]["messages"]["gone"] = {"$ref": "#/components/messages/gone"}


def _foreign_message(doc):
    doc["operations"]["node_sends_status"]["messages"].append(
        {"$ref": "#/channels/heartbeat/messages/heartbeat"}
    )


def _bad_qos(doc):
    doc["operations"]["node_sends_heartbeat"]["bindings"]["mqtt"]["qos"] = 3


@pytest.mark.parametrize(
    ("name", "change", "diagnostic"),
    [
        ("missing-message", _missing_message, "invalid-ref"),
        ("foreign-message", _foreign_message, "asyncapi3-operation-messages-from-referred-channel"),
        ("bad-qos", _bad_qos, "qos"),
    ],
)
def test_a_broken_document_fails_the_check(tmp_path, name, change, diagnostic):
    result = validate(_broken(tmp_path, name, change))
    assert result.returncode == 1, result.stdout + result.stderr
    assert ": error: " in result.stderr and diagnostic in result.stderr, result.stderr
    assert "not a valid AsyncAPI document" in result.stderr
