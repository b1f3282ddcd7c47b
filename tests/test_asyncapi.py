"""The AsyncAPI document (edgebus/asyncapi.py): the committed docs/asyncapi.yaml is what the
code generates, every topic builder and message type is in it, the QoS and retain flags it
states are those the code publishes with, and its schemas accept what `sub --json` prints.
tests/integration/test_asyncapi_parser.py has the official parser check it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edgebus.asyncapi import ROUTES, build
from edgebus.broker.matching import topic_matches
from edgebus.cli import app
from edgebus.cli.asyncapi_cmd import render
from edgebus.messages import MESSAGE_TYPES, to_dict
from edgebus.topics import Topics

from .test_messages import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
REGENERATE = "run `edgebus asyncapi --output docs/asyncapi.yaml`"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build()


def test_the_committed_document_is_the_generated_one():
    assert COMMITTED.is_file(), f"docs/asyncapi.yaml is missing: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == render("yaml"), (
        f"docs/asyncapi.yaml is out of date with the code: {REGENERATE}"
    )


def test_yaml_and_json_are_the_same_document():
    assert yaml.safe_load(render("yaml")) == json.loads(render("json")) == build()


def _address_regex(address: str) -> re.Pattern[str]:
    levels = ["[^/]+" if re.fullmatch(r"\{\w+\}", lv) else re.escape(lv)
              for lv in address.split("/")]  # fmt: skip
    return re.compile("/".join(levels))


def _sample_args(name: str) -> list[Any]:
    args: list[Any] = []
    for p in list(inspect.signature(getattr(Topics, name)).parameters.values())[1:]:
        if p.name == "topic":
            args.append(Topics("lab").status("n1"))
        else:
            args.append(7 if p.annotation in (int, "int") else f"{p.name}-1")
    return args


def _builders() -> list[str]:
    """Topics' topic and filter builders (each returns one str)."""
    return [name for name, member in vars(Topics).items()
            if callable(member) and not name.startswith("_")
            and inspect.signature(member).return_annotation in (str, "str")]  # fmt: skip


def _matching(doc: dict[str, Any], topic: str) -> list[str]:
    """The channels whose address fits the topic, the topic's own first. A topic may fit
    several, as on the broker (frames/<camera>/<frame_id>/end also fits
    frames/{camera}/{frame_id}/{chunk}); its own is the one with the most fixed levels."""
    found = [name for name, channel in doc["channels"].items()
             if _address_regex(channel["address"]).fullmatch(topic)]  # fmt: skip
    found.sort(key=lambda name: doc["channels"][name]["address"].count("{"))
    return found


def _own_channel(doc: dict[str, Any], topic: str) -> str:
    found = _matching(doc, topic)
    assert found, f"{topic} has no channel"
    params = [doc["channels"][name]["address"].count("{") for name in found]
    assert params.count(params[0]) == 1, f"{topic} fits channels {found} alike"
    return found[0]


def test_every_topic_builder_has_a_channel(doc):
    site_doc = build(site="lab")
    # A topic of each channel, each parameter filled as _sample_args fills a str argument.
    samples = {name: re.sub(r"\{(\w+)\}", r"\1-1", channel["address"])
               for name, channel in site_doc["channels"].items()}  # fmt: skip
    assert len(_builders()) > 30
    for name in _builders():
        topic = getattr(Topics("lab"), name)(*_sample_args(name))
        if "+" in topic or "#" in topic:  # a filter: it must reach some channel
            pattern = re.sub(r"^\$share/[^/]+/", "", topic)
            reached = [c for c, sample in samples.items() if topic_matches(pattern, sample)]
            assert reached, f"Topics.{name}() = {topic} matches no channel"
            continue
        own = _own_channel(site_doc, topic)
        if name != "json_view":
            assert own == name, f"Topics.{name}() = {topic} is on channel {own}"
            # A twin exactly where `edgebus json-view` may republish.
            viewable = any(topic_matches(f, topic) for f in Topics("lab").json_viewable().values())
            twin = _matching(site_doc, Topics("lab").json_view(topic))
            assert twin == ([f"{name}_json"] if viewable else []), (name, twin)
    for name, channel in doc["channels"].items():
        assert channel["address"].startswith("edgebus/v1/{site}/"), name
        base = name.removesuffix("_json")
        assert base in _builders() and base in doc["channels"], name


def test_addresses_are_distinct_and_parameters_described(doc):
    addresses = [channel["address"] for channel in doc["channels"].values()]
    assert len(set(addresses)) == len(addresses)
    described = doc["components"]["parameters"]
    for channel in doc["channels"].values():
        names = re.findall(r"\{(\w+)\}", channel["address"])
        assert list(channel.get("parameters", {})) == names
        assert all(described[n]["description"] for n in names)
    assert "site" not in build(site="lab")["components"]["parameters"]


def test_every_message_type_is_in_the_document_and_on_a_channel(doc):
    messages = doc["components"]["messages"]
    on_channels = {m for c in doc["channels"].values() for m in c["messages"]}
    for cls in MESSAGE_TYPES:
        for name in (cls.TYPE_NAME, f"{cls.TYPE_NAME}_json"):  # the JSON form: sub --json
            assert name in messages and name in doc["components"]["schemas"], name
        assert cls.TYPE_NAME in on_channels, cls.TYPE_NAME
        wire = messages[cls.TYPE_NAME]["x-edgebus-wire"]
        assert wire["typeCode"] == cls.TYPE_CODE
        assert wire["fields"] == [f.name for f in dataclasses.fields(cls)]
    sent = {ref["$ref"].rsplit("/", 1)[1] for op in doc["operations"].values()
            for part in (op, op.get("reply", {})) for ref in part.get("messages", [])}  # fmt: skip
    assert {n for n in sent if not n.endswith("_json")} == {c.TYPE_NAME for c in MESSAGE_TYPES}
    # The JSON view sends what its channels carry, e.g. results and statuses.
    assert {"result_json", "status_json", "model_switch_json"} <= sent


def _publishes() -> list[tuple[str, str, int, bool]]:
    """Every `x.publish(<...>.topics.NAME(...), message, qos=Q, retain=R)` (and every
    last will) in the package that states its QoS, as (where, NAME, Q, R)."""
    found = []
    for path in sorted((ROOT / "edgebus").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            topic, message = node.args[0], node.args[1]
            if name not in ("publish", "Will") or not isinstance(topic, ast.Call):
                continue
            builder = topic.func
            if not (isinstance(builder, ast.Attribute) and "topics" in ast.unparse(builder.value)):
                continue
            if isinstance(message, ast.Constant) and message.value == b"":
                continue  # clearing a retained topic carries no message
            given = dict(zip(("qos", "retain"), node.args[2:], strict=False))
            given.update((k.arg, k.value) for k in node.keywords if k.arg in ("qos", "retain"))
            flags = {k: v.value for k, v in given.items() if isinstance(v, ast.Constant)}
            if "qos" not in flags:
                continue  # a helper that publishes with its own flags (checked where it does)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.append((where, builder.attr, flags["qos"], flags.get("retain", False)))
    return found


def test_qos_and_retain_are_those_the_code_publishes_with():
    declared = {(r.channel, r.qos, r.retain) for r in ROUTES}
    publishes = _publishes()
    assert len(publishes) > 15
    for where, builder, qos, retain in publishes:
        assert (builder, qos, retain) in declared, (
            f"{where} publishes on Topics.{builder} with qos={qos} retain={retain}, "
            "which ROUTES in edgebus/asyncapi.py does not state"
        )


def _check(schema: dict[str, Any], value: Any, schemas: dict[str, Any], at: str) -> None:
    """A JSON-schema check of the subset the generator writes."""
    if "$ref" in schema:
        _check(schemas[schema["$ref"].rsplit("/", 1)[1]], value, schemas, at)
    for part in schema.get("allOf", []):
        _check(part, value, schemas, at)
    if "oneOf" in schema:
        ok = 0
        for part in schema["oneOf"]:
            try:
                _check(part, value, schemas, at)
                ok += 1
            except AssertionError:
                pass
        assert ok == 1, f"{at}: {value!r} matches {ok} of oneOf"
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "object": dict, "array": list, "null": type(None)}  # fmt: skip
    if "type" in schema:
        allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(
            isinstance(value, kinds[t]) and (t == "boolean" or not isinstance(value, bool))
            for t in allowed
        ), f"{at}: {value!r} is not {allowed}"
    assert value == schema.get("const", value), at
    assert value in schema.get("enum", [value]), at
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value), at
    if isinstance(value, str):
        assert len(value) <= schema.get("maxLength", len(value)), at
        assert re.fullmatch(schema.get("pattern", ".*").strip("^$"), value), at
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(schema.get("items", {}), item, schemas, f"{at}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{at}: missing {key}"
        properties = schema.get("properties", {})
        for key, item in value.items():
            sub = properties.get(key, schema.get("additionalProperties", {}))
            assert sub is not False, f"{at}: unexpected {key}"
            _check(sub, item, schemas, f"{at}.{key}")


def test_the_schemas_accept_what_sub_json_prints(doc):
    schemas = doc["components"]["schemas"]
    for message in EXAMPLES:
        # Exactly the line `edgebus sub --json` prints (cli/bus_tools.py's _render).
        printed = json.dumps({"topic": "edgebus/v1/lab/x", **to_dict(message)}, default=str)
        _check({"$ref": f"#/{message.TYPE_NAME}_json"}, json.loads(printed), schemas,
               message.TYPE_NAME)  # fmt: skip


def test_the_schemas_refuse_what_sub_json_would_not_print(doc):
    schemas = doc["components"]["schemas"]
    bad = {"topic": "t", **to_dict(EXAMPLES[-1])}
    for field, value in (("outcome", "lost"), ("frame_id", -1), ("type", "result")):
        with pytest.raises(AssertionError):
            _check({"$ref": "#/frame_outcome_json"}, {**bad, field: value}, schemas, "bad")
    with pytest.raises(AssertionError):
        _check({"$ref": "#/frame_outcome_json"}, {"type": "frame_outcome"}, schemas, "bad")


def test_the_command_writes_yaml_or_json(tmp_path):
    runner = CliRunner()
    out = tmp_path / "doc.json"
    result = runner.invoke(app, ["asyncapi", "--format", "json", "--site", "lab", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["channels"]["status"]["address"] == "edgebus/v1/lab/status/{node}"
    result = runner.invoke(app, ["asyncapi"])
    assert result.exit_code == 0 and result.stdout == render("yaml")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--format", "xml"], 2, "error: --format 'xml': expected one of yaml, json"),
        (["--site", "a/b"], 2, "error: --site: site 'a/b' must not contain '/'"),
        (["-o", "/nonexistent/dir/doc.yaml"], 1, "error: --output '/nonexistent/dir/doc.yaml'"),
    ],
)
def test_the_command_fails_with_one_line(args, code, message):
    result = CliRunner().invoke(app, ["asyncapi", *args])
    assert result.exit_code == code
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
