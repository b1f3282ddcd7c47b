"""The layer rules of the design, checked on the source: data flows one way (a layer
imports only layers below it), training code stays out of the runtime, and no two
modules import each other at load time."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "edgebus"

# Each top-level module or folder of edgebus and its height; a module may import only
# lower layers, its own, and the other layers of its height except where those must stay
# independent: the actors (a camera never reaches into the coordinator, nor back).
HEIGHTS = {
    **dict.fromkeys(
        ("edgebus", "errors", "clock", "aio", "topics", "messages", "message_limits",
         "message_wire", "control_messages", "asyncapi", "asyncapi_schema", "config", "shapes",
         "flat_data", "fleet_file", "acl", "fashion_mnist"),
        0,
    ),
    "broker": 1,
    **dict.fromkeys(("codecs", "policies", "storage", "qos", "scheduling"), 2),
    "actor": 3,
    **dict.fromkeys(("nodes", "coordinator"), 4),
    **dict.fromkeys(
        ("cli", "launch", "launch_plan", "launch_fleet", "launch_children", "dashboard",
         "audit_view", "reports", "experiments", "bench", "__main__"),
        5,
    ),
}  # fmt: skip
SERVICES_HEIGHT = 2
INDEPENDENT_HEIGHTS = {4}
# Training (torch) is imported only by the training commands and the experiments, and
# the algorithms reproduced for the figures only by the experiments.
TRAINING = "ml"
MAY_IMPORT_TRAINING = {"cli", "experiments", TRAINING}
RESEARCH = "research"
MAY_IMPORT_RESEARCH = {"experiments", RESEARCH}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "edgebus"


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module.split(".")[0] != "edgebus":
            return []
        # `from edgebus.nodes import camera` imports the module edgebus.nodes.camera.
        names = [f"{node.module}.{alias.name}" for alias in node.names]
        return [node.module, *(n for n in names if _is_module(n))]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "edgebus"]
    return []


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative).is_dir()


def _load_time_imports(tree: ast.Module) -> list[str]:
    """Imports that run when the module loads: not inside a function, not type-only."""
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                break
            found += _imported(inner)
    return found


def import_graphs() -> tuple[dict[str, set[str]], nx.DiGraph]:
    """Every import (for the layer rules) and the load-time ones (for cycles)."""
    every: dict[str, set[str]] = {}
    load_time = nx.DiGraph()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module = module_name(path)
        every[module] = {t for node in ast.walk(tree) for t in _imported(node)}
        load_time.add_node(module)
        for target in _load_time_imports(tree):
            if target != module and not module.startswith(f"{target}."):
                load_time.add_edge(module, target)  # a package's __init__ is not a cycle
    return every, load_time


def violations(every: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in every.items():
        source = layer_of(module)
        for target in sorted(targets):
            layer = layer_of(target)
            if layer == source:
                continue
            if layer == RESEARCH:
                if source not in MAY_IMPORT_RESEARCH:
                    found.append(f"{module} imports research code {target}")
                continue
            if source == RESEARCH:
                layer_height = HEIGHTS.get(layer, 99)
                if layer_height > SERVICES_HEIGHT:
                    found.append(f"research code {module} imports {target}")
                continue
            if layer == TRAINING or source == TRAINING:
                if layer == TRAINING and source not in MAY_IMPORT_TRAINING:
                    found.append(f"{module} imports training code {target}")
                elif source == TRAINING and HEIGHTS.get(layer, 99) > SERVICES_HEIGHT:
                    found.append(f"training code {module} imports {target}")
                continue
            mine, theirs = HEIGHTS.get(source), HEIGHTS.get(layer)
            if mine is None or theirs is None:
                found.append(f"{module} -> {target}: a layer without a height in HEIGHTS")
            elif theirs > mine or (theirs == mine and mine in INDEPENDENT_HEIGHTS):
                found.append(f"{module} ({source}, {mine}) imports {target} ({layer}, {theirs})")
    return found


def test_every_layer_imports_only_layers_below_it():
    every, _ = import_graphs()
    assert violations(every) == []


def test_no_two_modules_import_each_other_at_load_time():
    _, load_time = import_graphs()
    assert load_time.has_edge("edgebus.nodes.camera", "edgebus.nodes.sources")  # it reads
    assert not load_time.has_edge("edgebus.cli.fleet", "edgebus.launch")  # in a function
    assert list(nx.simple_cycles(load_time)) == []


def test_the_checker_sees_a_wrong_arrow_and_a_cycle():
    # A check that cannot fail proves nothing: feed it the two faults it must report.
    wrong = {
        "edgebus.storage.local": {"edgebus.nodes.camera"},
        "edgebus.coordinator.node": {"edgebus.nodes.camera"},
        "edgebus.cli": {"edgebus.launch", "edgebus.nodes"},
    }
    assert violations(wrong) == [
        "edgebus.storage.local (storage, 2) imports edgebus.nodes.camera (nodes, 4)",
        "edgebus.coordinator.node (coordinator, 4) imports edgebus.nodes.camera (nodes, 4)",
    ]
    assert violations({"edgebus.policies.dqn": {"edgebus.ml.export"}}) == [
        "edgebus.policies.dqn imports training code edgebus.ml.export"
    ]
    assert violations({"edgebus.coordinator.node": {"edgebus.research.ents"}}) == [
        "edgebus.coordinator.node imports research code edgebus.research.ents"
    ]
    circle = nx.DiGraph([("edgebus.a", "edgebus.b"), ("edgebus.b", "edgebus.a")])
    assert list(nx.simple_cycles(circle))
