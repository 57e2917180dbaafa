"""Where a circuit's rows go, per ONNX node and per EZKL op. Prints JSON.

    python scripts/circuit_rows.py [--onnx models/sentinel.onnx] [--cols 1] [--input hashed] [--scale 10] [--nodes]

Runs EZKL's `gen_settings` (the dummy layout that counts rows) with
Sentinel's run args and reads EZKL's own debug log of the layout: before
each node it reports the row reached, so the difference is what the node
cost. Rows of the Poseidon hash of a hashed input live in their own
columns and are not in this count (8,202 rows for 200 inputs); the
circuit's `num_rows` is the larger of the two. EZKL reports no row after
the last node, so `model_rows_counted` leaves that one node out.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TypedDict

from sentinel.config import CircuitConfig

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NODE = re.compile(r"laying out (\d+): (.*)")
_ROWS = re.compile(r"\(rows=(\d+), coord=(\d+)")


class NodeRows(TypedDict):
    """One laid-out ONNX node: its index, EZKL's op, and its rows (None for the last: nothing reports after it)."""

    node: int
    op: str
    rows: int | None


def rows_per_node(log_text: str) -> list[NodeRows]:
    """``[{node, op, rows}]`` from EZKL's layout debug log (a node's rows = the next report minus its own)."""
    nodes: list[NodeRows] = []
    current: tuple[int, str] | None = None
    last_rows = 0
    for line in _ANSI.sub("", log_text).splitlines():
        if match := _NODE.search(line):
            current = (int(match.group(1)), match.group(2).strip())
            continue
        if (match := _ROWS.search(line)) and current is not None:
            rows = int(match.group(1))
            if nodes and nodes[-1]["rows"] is None:
                nodes[-1]["rows"] = rows - last_rows
            nodes.append({"node": current[0], "op": current[1], "rows": None})
            last_rows = rows
            current = None
    return nodes


def op_kind(op: str) -> str:
    """``REBASED (div=1024.0, ...) (MULT)`` -> ``rescaled MULT``; ``SUMPOOL (...)`` -> ``SUMPOOL``."""
    if op.startswith("REBASED"):
        inner = op.rsplit("(", 1)[-1].rstrip(")").split(" ")[0]
        return f"rescaled {inner}"
    return op.split("(", 1)[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=Path("models/sentinel.onnx"))
    parser.add_argument("--cols", type=int, default=1, help="num_inner_cols")
    parser.add_argument("--input", default="hashed", choices=["hashed", "public", "private"])
    parser.add_argument("--scale", type=int, default=10)
    defaults = CircuitConfig()
    parser.add_argument("--decomp-base", type=int, default=defaults.decomp_base)
    parser.add_argument("--decomp-legs", type=int, default=defaults.decomp_legs)
    parser.add_argument("--ignore-io-checks", action="store_true",
                        help="EZKL's ignore_range_check_inputs_outputs (it range-checks every constant instead)")
    parser.add_argument("--nodes", action="store_true", help="also list every node")
    args = parser.parse_args()
    if not args.onnx.is_file():
        parser.error(f"--onnx {args.onnx}: no such file (train first, or point at an exported model)")

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    from sentinel.zk import ezkl_api

    run_args = ezkl_api.run_args(args.input, "fixed", "public", "SAFE", args.cols, args.decomp_base, args.decomp_legs)
    run_args.input_scale = args.scale
    if args.ignore_io_checks:
        run_args.ignore_range_check_inputs_outputs = True
    run_args.param_scale = args.scale
    # ezkl_api quietens EZKL's logger; the layout's debug log is what this script reads, so call EZKL directly.
    ezkl = ezkl_api._ezkl()
    logging.getLogger("ezkl").setLevel(logging.DEBUG)
    with tempfile.TemporaryDirectory(prefix="sentinel-rows-") as tmp:
        settings = Path(tmp) / "settings.json"
        ezkl_api.call("gen_settings", ezkl.gen_settings, str(args.onnx), str(settings), py_run_args=run_args)
        num_rows = json.loads(settings.read_text())["num_rows"]
    root.removeHandler(handler)
    nodes = [n for n in rows_per_node(buffer.getvalue()) if n["rows"]]
    rows = [(op_kind(n["op"]), n["rows"] or 0) for n in nodes]
    by_op: dict[str, int] = {}
    for kind, count in rows:
        by_op[kind] = by_op.get(kind, 0) + count
    out: dict[str, object] = {
        "onnx": str(args.onnx), "num_inner_cols": args.cols, "input_visibility": args.input, "scale": args.scale,
        "decomp": [args.decomp_base, args.decomp_legs],
        "num_rows": num_rows, "model_rows_counted": sum(count for _, count in rows),
        "rows_by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
    }
    if args.nodes:
        out["nodes"] = nodes
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    from sentinel.errors import SentinelError

    try:
        main()
    except SentinelError as exc:
        raise SystemExit(f"error: {exc}") from None
