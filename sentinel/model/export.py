"""ONNX export with a parity check on every export.

tf2onnx's ``from_keras`` fails on Keras 3, so the model is traced with
``from_function`` at a fixed batch of 1 (the circuit proves one window at a
time). The LSTM is built with ``unroll=True``, so the graph holds plain
MatMul/Sigmoid/Tanh and no ``Loop`` (EZKL cannot compile loops); the export
refuses a graph that still has one. Parity: Keras vs onnxruntime over the
given windows, max abs difference <= ``tolerance`` or a ``ModelError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.artifacts import atomic_write_bytes
from sentinel.errors import ModelError

PARITY_TOLERANCE = 1e-5
INPUT_NAME = "window"
FORBIDDEN_OPS = frozenset({"Loop", "Scan", "If"})


@dataclass(frozen=True)
class ExportResult:
    """Where the ONNX went and how closely it matches Keras."""

    path: Path
    opset: int
    op_types: tuple[str, ...]
    parity_windows: int
    parity_max_abs_diff: float

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "opset": self.opset, "op_types": list(self.op_types),
                "parity_windows": self.parity_windows, "parity_max_abs_diff": self.parity_max_abs_diff}


def onnx_bytes(model: Any, window: int, features: int = 4, opset: int = 13) -> bytes:
    """Serialised ONNX of ``model`` for one window of shape (1, window, features)."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines are not ours to show

    spec = [tf.TensorSpec((1, window, features), tf.float32, name=INPUT_NAME)]
    fn = tf.function(lambda x: model(x, training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises many kinds; translate at the seam
        raise ModelError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    return canonical_onnx(split_scale_constants(proto.SerializeToString()))


#: Largest power-of-two step a single multiplication may take (2**-4 = 1/16 is
#: exact at every fixed-point scale >= 4 the circuit may calibrate to).
MAX_POW2_STEP = 4


def split_scale_constants(payload: bytes) -> bytes:
    """Rewrite ``x * c`` with an ill-conditioned constant ``c`` as ``x * 2**-a * 2**-b ... * m``.

    The circuit quantises constants to fixed point at the param scale: 1/800
    at scale 8 becomes 0 and at scale 11 becomes 3/2048 (17 % off). Powers of
    two no smaller than 2**-4 are exact at any scale >= 4 and a mantissa in
    [1, 2) keeps every bit, so the chain keeps the feature scaling accurate.
    (The Keras layer multiplies in two steps already; tf2onnx folds them.)
    """
    import onnx as onnx_lib
    from onnx import helper, numpy_helper

    from sentinel.model.network import pow2_split

    model = onnx_lib.load_from_string(payload)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    nodes = []
    for node in graph.node:
        const = next((name for name in node.input if name in inits), None) if node.op_type == "Mul" else None
        values = numpy_helper.to_array(inits[const]) if const is not None else None
        if (
            values is None
            or values.size == 0
            or not np.all(np.isfinite(values))
            or np.any(values == 0)
            or np.all((np.abs(values) >= 0.5) & (np.abs(values) < 2.0))
        ):
            nodes.append(node)
            continue
        split = [pow2_split(abs(float(v))) for v in values.ravel()]
        exponents = np.array([round(np.log2(p)) for p, _ in split])
        mantissa = (np.sign(values).ravel() * np.array([m for _, m in split])).reshape(values.shape)
        current = [name for name in node.input if name != const][0]
        step = 0
        while np.any(exponents != 0):
            move = np.clip(exponents, -MAX_POW2_STEP, MAX_POW2_STEP)
            exponents = exponents - move
            factor = np.power(2.0, move).reshape(values.shape).astype(values.dtype)
            name = f"{node.name}__pow2_{step}"
            graph.initializer.append(numpy_helper.from_array(factor, name))
            nodes.append(helper.make_node("Mul", [current, name], [name + "_out"], name=name + "_mul"))
            current = name + "_out"
            step += 1
        m_name = f"{node.name}__mantissa"
        graph.initializer.append(numpy_helper.from_array(mantissa.astype(values.dtype), m_name))
        nodes.append(helper.make_node("Mul", [current, m_name], list(node.output), name=m_name + "_mul"))
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def canonical_onnx(payload: bytes) -> bytes:
    """Rename tensors and nodes by order of use so equal graphs give equal bytes.

    tf2onnx names weights after whichever of several equivalent TensorFlow ops
    it meets first, which varies between runs, and records the traced
    function's name; the content-addressed circuit artifacts downstream need
    the same model to hash the same.
    """
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(payload)
    graph = model.graph
    names: dict[str, str] = {}
    # A stable, meaningful output name for the circuit and its users.
    for i, out in enumerate(graph.output):
        names[out.name] = "risk" if len(graph.output) == 1 else f"risk_{i}"
        out.name = names[out.name]
    keep = {v.name for v in graph.input} | set(names.values())

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in names:
            names[name] = f"t{len(names)}"
        return names[name]


    for i, node in enumerate(graph.node):
        node.name = f"n{i}_{node.op_type}"
        for j, name in enumerate(node.input):
            node.input[j] = rename(name)
        for j, name in enumerate(node.output):
            node.output[j] = rename(name)
    used = [init for init in graph.initializer if init.name in names]
    for init in used:
        init.name = names[init.name]
    used.sort(key=lambda init: int(init.name[1:]) if init.name.startswith("t") else -1)
    del graph.initializer[:]
    graph.initializer.extend(used)
    del graph.value_info[:]
    graph.name = "sentinel_risk"
    graph.doc_string = ""  # names the traced function, which differs per trace
    return model.SerializeToString(deterministic=True)


def onnx_scores(onnx: bytes | Path, x: np.ndarray) -> np.ndarray:
    """Scores of windows ``x`` (n, W, 4) from onnxruntime, one window per run."""
    import onnxruntime as ort

    source = str(onnx) if isinstance(onnx, Path) else onnx
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = np.empty(len(x), dtype=np.float64)
    for i in range(len(x)):
        out[i] = float(session.run(None, {name: x[i : i + 1].astype(np.float32)})[0].reshape(-1)[0])
    return out


def op_types(onnx: bytes) -> tuple[str, ...]:
    """Sorted distinct op types of an ONNX graph."""
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(onnx)
    return tuple(sorted({node.op_type for node in model.graph.node}))


def export_onnx(model: Any, window: int, path: Path, parity_x: np.ndarray, opset: int = 13,
                tolerance: float = PARITY_TOLERANCE) -> ExportResult:
    """Export, check ops and parity, then write ``path`` atomically (nothing written on failure)."""
    payload = onnx_bytes(model, window, parity_x.shape[-1] if parity_x.ndim == 3 else 4, opset)
    ops = op_types(payload)
    bad = sorted(FORBIDDEN_OPS.intersection(ops))
    if bad:
        raise ModelError(f"exported graph contains {', '.join(bad)}: build the LSTM with unroll=True")
    if len(parity_x) == 0:
        raise ModelError("no windows to check ONNX parity on")
    keras_scores = np.asarray(model.predict(parity_x, batch_size=4096, verbose=0))[:, 0].astype(np.float64)
    ort_scores = onnx_scores(payload, parity_x)
    diff = float(np.max(np.abs(keras_scores - ort_scores)))
    if not diff <= tolerance:
        worst = int(np.argmax(np.abs(keras_scores - ort_scores)))
        raise ModelError(
            f"ONNX parity failed: max |keras - onnxruntime| = {diff:.3g} > {tolerance:g} "
            f"(window {worst}: keras {keras_scores[worst]:.6f}, onnxruntime {ort_scores[worst]:.6f})"
        )
    atomic_write_bytes(Path(path), payload)
    return ExportResult(Path(path), opset, ops, len(parity_x), diff)
