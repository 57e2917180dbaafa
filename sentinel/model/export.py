"""ONNX export with a parity check on every export.

Sentinel's risk model is exported in its circuit form
(:mod:`sentinel.model.circuit_form`): the same function written out node by
node from the trained weights so that the proof rescales each quantity once.
Any other Keras model (the seed architecture ``bench --against seed``
builds) is traced with tf2onnx's ``from_function`` (``from_keras`` fails on
Keras 3) at a fixed batch of 1; its LSTM must be built with ``unroll=True``
so the graph holds plain MatMul/Sigmoid/Tanh and no ``Loop`` (EZKL cannot
compile loops), and the export refuses a graph that still has one. Parity:
Keras vs onnxruntime over the given windows, max abs difference <=
``tolerance`` or a ``ModelError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.artifacts import atomic_write_bytes
from sentinel.errors import ModelError
from sentinel.model.network import KerasModel

#: float32 noise: pooled sums of volumes reach ~1e5 and are summed in a different order than Keras does.
PARITY_TOLERANCE = 5e-5
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


def is_sentinel_model(model: KerasModel) -> bool:
    """Whether ``model`` is Sentinel's risk model (pooling, ``features``, ``lstm``, ``risk``)."""
    names = {layer.name for layer in getattr(model, "layers", [])}
    return {"features", "lstm", "risk"} <= names


def onnx_bytes(model: KerasModel, window: int, features: int = 4, opset: int = 13) -> bytes:
    """Serialised ONNX of ``model`` for one window of shape (1, window, features).

    Sentinel's risk model is exported in its circuit form
    (:mod:`sentinel.model.circuit_form`: the same function, fewer proof rows);
    any other model as Keras traces it.
    """
    if is_sentinel_model(model):
        from sentinel.model.circuit_form import circuit_form, circuit_onnx

        return circuit_onnx(circuit_form(model), INPUT_NAME, opset)
    import logging

    from sentinel.model.backend import import_tensorflow

    tf = import_tensorflow()
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines are not ours to show

    spec = [tf.TensorSpec((1, window, features), tf.float32, name=INPUT_NAME)]
    fn = tf.function(lambda x: model(x, training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises many kinds; translate at the seam
        raise ModelError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    return canonical_onnx(proto.SerializeToString())


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
    encoded: bytes = model.SerializeToString(deterministic=True)
    return encoded


class OnnxScorer:
    """The float model in onnxruntime, its session loaded once (the relay scores every window with it)."""

    def __init__(self, onnx: bytes | Path) -> None:
        import onnxruntime as ort

        source = str(onnx) if isinstance(onnx, Path) else onnx
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores of windows ``x`` (n, W, 4), one window per run."""
        out = np.empty(len(x), dtype=np.float64)
        for i in range(len(x)):
            out[i] = float(self.session.run(None, {self.input: x[i : i + 1].astype(np.float32)})[0].reshape(-1)[0])
        return out


def onnx_scores(onnx: bytes | Path, x: np.ndarray) -> np.ndarray:
    """Scores of windows ``x`` (n, W, 4) from onnxruntime, one window per run."""
    return OnnxScorer(onnx)(x)


def op_types(onnx: bytes) -> tuple[str, ...]:
    """Sorted distinct op types of an ONNX graph."""
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(onnx)
    return tuple(sorted({node.op_type for node in model.graph.node}))


def export_onnx(model: KerasModel, window: int, path: Path, parity_x: np.ndarray, opset: int = 13,
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
