"""The measurement scripts' parsing (their measurements themselves are run by hand and recorded in docs/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_per_node_takes_differences_of_the_layout_log():
    rows = _load("circuit_rows")
    log = "\n".join([
        "laying out 0: Input",
        "\x1b[34m(rows=0, coord=0, constants=0)\x1b[0m",
        "laying out 1: REBASED (div=1024.0, rebasing_op=DIV (denom=1024)) (MULT)",
        "(rows=200, coord=200, constants=3)",
        "some unrelated line (rows=5 is not a report)",
        "laying out 2: SIGMOID(scale=1024)",
        "(rows=424, coord=424, constants=3)",
    ])
    nodes = rows.rows_per_node(log)
    assert [(n["node"], n["rows"]) for n in nodes] == [(0, 200), (1, 224), (2, None)]
    assert rows.op_kind(str(nodes[1]["op"])) == "rescaled MULT"
    assert rows.op_kind("SUMPOOL (padding=[(0, 0)], stride=[1, 40])") == "SUMPOOL"
    assert rows.op_kind("SIGMOID(scale=1024)") == "SIGMOID"
