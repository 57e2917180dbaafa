"""The trained model rewritten for the circuit: same float math, far fewer proof rows.

A proof pays per *rescale*: every product of two fixed-point values at
scale s lands at scale 2s, and EZKL brings it back with a checked division
that costs ~55 rows per element in SAFE mode (docs/circuit-sweep.md, 7).
Traced from Keras, the model rescales far more often than its math needs:
average pooling divides, each feature scale constant is a fixed-point
multiply, and tf2onnx emits an LSTM gate as two products (``x.W`` and
``h.U``) and the cell update as two more (``f*c``, ``i*g``), each rescaled on
its own. This module builds the same function from the trained weights in a
form where each quantity is rescaled once:

- pooling: each step gathers its rows and sums them (one addition per
  value, no product) and weighs the sum by the integer ``L / n_t`` (``L``
  the least common multiple of the pool sizes). Integer constants get
  scale 0 in the circuit (``rebase_frac_zero_constants``), so nothing is
  rescaled here;
- feature scaling is an integer multiply by ``K = s * 2**SCALE_BITS / L``
  (exact: the Keras layer keeps its scale constants ``s`` on that grid) and
  two exact fixed-point steps of ``2**-10``, which EZKL rescales once (the
  traced model rescaled four times; a single ``1/std`` constant would round
  to a few quanta); the clip is ``relu(x + a) - relu(x - a) - a``;
- the baseline step is no LSTM step: its scaled BLR joins each LSTM step's
  features by padding and adding (no product);
- the first LSTM step starts from ``h = c = 0``, so it has no recurrent
  product and no forget gate;
- each later LSTM step computes its pre-activations as one product
  ``[x, h] . [W; U]`` (one rescale per gate element instead of two);
- the cell update ``f*c + i*g`` is one product summed over the pair axis,
  ``[f, i] . [c, g]`` (one rescale per unit instead of two);
- every ``sigmoid(x)`` is ``(1 + tanh(x / 2)) / 2``: the halving of ``x``
  is folded into the weights, and the outer halving into the next product
  (the gate is scaled by the integer 2**9 and one exact ``2**-10`` step,
  which EZKL rescales together with that product). So the circuit has one
  lookup table, a tanh table over half the sigmoid bound, where it had a
  sigmoid and a tanh table over the whole bound; the model holds the
  candidate gate to half the bound
  (:data:`sentinel.model.network.CANDIDATE_SHARE`) so that its tanh fits it;
- with ``model.activations = "hard"`` every tanh is ``hard_tanh(x) =
  relu(x + 1) - relu(x - 1) - 1`` and every sigmoid Keras' ``hard_sigmoid``,
  ``(1 + hard_tanh(x / 3)) / 2``: ReLUs are range checks EZKL has anyway
  (every rescale needs them), so the circuit has no lookup table at all.

Only two-operand products: EZKL 23.0.5 lays out a three-operand ``Einsum``
with constraints its witness does not satisfy (docs/circuit-sweep.md, 9).

The float results equal the Keras model's up to float32 rounding; the export
checks that on every window it is given (:func:`sentinel.model.export.export_onnx`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentinel.errors import ModelError
from sentinel.model.network import FROM_FIRST_STEP, SCALE_BITS, KerasModel

#: Bits each division step takes; exact at fixed-point scales >= this.
DIVISION_STEP_BITS = 10


@dataclass(frozen=True)
class CircuitForm:
    """Constants of the rewritten model, all derived from a trained Keras model."""

    steps_rows: tuple[tuple[int, int, int], ...]  # per pooled step (the baseline first): first row, end row, L / n_t
    window: int  # rows R of the input window
    first_mask: np.ndarray  # (F,) 1 where a raw feature is measured from the baseline step
    offset: np.ndarray  # (F,) subtracted from the scaled features: the BLR's mean * its scale, else 0
    multiplier: np.ndarray  # (F,) integers K; features = centred * K / 2**SCALE_BITS
    clip: float
    kernel: np.ndarray  # (F + 1 + u, 4u): [W; U], W's last row for the baseline's BLR
    bias: np.ndarray  # (4u,)
    dense_kernel: np.ndarray  # (u, 1)
    dense_bias: np.ndarray  # (1,)
    hard: bool = False  # hard_sigmoid / hard_tanh (no lookup table) instead of sigmoid / tanh
    score_span: float = 0.0  # hard: score = clip(1/2 + logit / (2 * span), 0, 1)

    @property
    def units(self) -> int:
        return int(self.bias.shape[0] // 4)

    @property
    def absolute_features(self) -> int:
        """How many leading features are not measured from the first step (BLR)."""
        return int(np.argmax(self.first_mask != 0)) if np.any(self.first_mask != 0) else len(self.first_mask)

    @property
    def steps(self) -> int:
        """LSTM steps (the pooled steps after the baseline)."""
        return len(self.steps_rows) - 1


def pooling_of(model: KerasModel) -> tuple[tuple[int, int], ...]:
    """``((rows, pool), ...)`` of a Sentinel model, read from its cropping and pooling layers."""
    segments: list[tuple[int, int]] = []
    for layer in model.layers:
        if layer.name.startswith("rows_"):
            start, end = (int(v) for v in layer.name.split("_")[1:3])
            index = len(segments)
            pool_layer = next((other for other in model.layers if other.name == f"pool_{index}"), None)
            pool = int(pool_layer.pool_size[0]) if pool_layer is not None else 1
            segments.append((end - start, pool))
    if not segments:
        raise ModelError("model has no rows_* cropping layers: not a Sentinel risk model")
    return tuple(segments)


def circuit_form(model: KerasModel) -> CircuitForm:
    """The constants of ``model``'s circuit form (a model built by :func:`sentinel.model.network.build_model`)."""
    from sentinel.model.network import feature_scales

    try:
        features = model.get_layer("features")
        lstm = model.get_layer("lstm")
        risk = model.get_layer("risk")
    except ValueError as exc:
        raise ModelError(f"not a Sentinel risk model: {exc}") from None
    pooling = pooling_of(model)
    window = sum(rows for rows, _ in pooling)
    lcm = math.lcm(*(pool for _, pool in pooling))
    steps_rows, start = [], 0
    for rows, size in pooling:
        for begin in range(start, start + rows, size):
            steps_rows.append((begin, begin + size, lcm // size))
        start += rows
    grid = lcm / 2.0**SCALE_BITS
    if not getattr(features, "baseline", False):
        raise ModelError("the model runs its LSTM over the baseline step too: a model from before the baseline "
                         "became context (circuit form); retrain it")
    if features.scale_grid != grid:
        raise ModelError(f"the features layer's scale grid is {features.scale_grid:g}, the circuit form needs {grid:g} "
                         f"(L {lcm} / 2**{SCALE_BITS}): a model from before the circuit form; retrain it")
    family, span = activation_family(model)
    scales = feature_scales(features.std, features.price_ref, grid)
    multiplier = np.array([round(s / grid) for s in scales], dtype=np.int64)
    kernel, recurrent, bias = (np.asarray(w, dtype=np.float64) for w in lstm.get_weights())
    dense_kernel, dense_bias = (np.asarray(w, dtype=np.float64) for w in risk.get_weights())
    return CircuitForm(
        steps_rows=tuple(steps_rows),
        window=window,
        first_mask=np.array(FROM_FIRST_STEP, dtype=np.int64),
        offset=np.array([features.mean[0] * scales[0], 0.0, 0.0, 0.0]),
        multiplier=multiplier,
        clip=float(features.clip),
        kernel=np.concatenate([kernel, recurrent], axis=0),
        bias=bias,
        dense_kernel=dense_kernel,
        dense_bias=dense_bias,
        hard=family == "hard",
        score_span=span,
    )


def activation_family(model: KerasModel) -> tuple[str, float]:
    """``("smooth", 0)`` or ``("hard", span)`` (:data:`sentinel.model.network.ACTIVATIONS`), read from the layers."""
    from sentinel.model.backend import import_keras
    from sentinel.model.network import ACTIVATIONS, score_layer

    keras = import_keras()

    lstm, risk = model.get_layer("lstm"), model.get_layer("risk")
    names = tuple(str(keras.activations.serialize(fn))
                  for fn in (lstm.cell.recurrent_activation, lstm.cell.activation, risk.activation))
    score = score_layer(model)
    gate, candidate = ACTIVATIONS["smooth"]
    if names == (gate, candidate, gate) and score is None:
        return "smooth", 0.0
    gate, candidate = ACTIVATIONS["hard"]
    if names == (gate, candidate, "linear") and score is not None:
        return "hard", float(score.span)
    raise ModelError(f"activations (gates, candidate, output) {names}{' and a score layer' if score else ''}: the "
                     f"circuit form knows sigmoid/tanh/sigmoid and hard_sigmoid/hard_tanh/linear with a score layer")


def circuit_onnx(form: CircuitForm, window_name: str = "window", opset: int = 13) -> bytes:
    """The ONNX graph of ``form``: input (1, R, 4) float32, output ``risk`` (1, 1).

    Written node by node rather than traced: tf2onnx's optimiser folds the
    integer multiply and the division back into one fixed-point constant,
    and EZKL's graph optimiser (tract) splits a product whose input is a
    ``Concat`` back into one product per part. Vectors are therefore joined
    by zero-padding and adding, which neither rewrites.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def pad(x: str, before: int, after: int, name: str, rank: int = 2) -> str:
        """Zero-pad the last axis of ``x``."""
        pads = [0] * (rank - 1) + [before] + [0] * (rank - 1) + [after]
        return node("Pad", [x, const(f"{name}_pads", pads, np.int64)], name)

    def cut(x: str, start: int, end: int, axis: int, name: str) -> str:
        return node("Slice", [x, const(f"{name}_s", [start], np.int64), const(f"{name}_e", [end], np.int64),
                              const(f"{name}_a", [axis], np.int64)], name)

    u, n_inputs = form.units, form.kernel.shape[0] - form.units  # n_inputs: raw features + the baseline's BLR
    n_features = len(form.first_mask)
    # Pooling: each step sums its own rows (one addition per row; no product) and weighs the sum by
    # the integer L / n_t (scale 0 in the circuit, so no rescale). Rows are gathered, not sliced:
    # EZKL charges a Slice of the input its whole size (200 rows), a gather of constant rows nothing.
    step_sums = []
    for t, (start, end, weight) in enumerate(form.steps_rows):
        picked = node("Gather", [window_name, const(f"rows{t}_idx", np.arange(start, end), np.int64)], f"rows{t}",
                      axis=1)
        total = node("ReduceSum", [picked, const(f"rows{t}_axis", [1], np.int64)],
                     f"sum{t}", keepdims=1)  # (1, 1, F)
        if weight != 1:
            total = node("Mul", [total, const(f"sum{t}_weight", float(weight))], f"pooled{t}")
        step_sums.append(total)
    multiplier = const("multiplier", form.multiplier.reshape(1, 1, -1))
    offset = const("offset", form.offset.reshape(1, 1, -1))
    shifts = [const(f"shift_{k}", 2.0**-DIVISION_STEP_BITS) for k in range(SCALE_BITS // DIVISION_STEP_BITS)]
    clip = const("clip", form.clip) if form.clip > 0 else None

    def scale_and_clip(centred: str, columns: int, name: str) -> str:
        """``clip((centred * K) / 2**SCALE_BITS - offset)`` for the leading feature ``columns``."""
        k, off = multiplier, offset
        if columns < n_features:
            k = cut(multiplier, 0, columns, 2, f"{name}_k")
            off = cut(offset, 0, columns, 2, f"{name}_offset")
        # Divide by 2**SCALE_BITS in exact steps of 2**-10 (EZKL turns a division by a constant into
        # a fixed-point multiply; 2**-10 is one quantum at scale 10). EZKL lays such a multiply out as
        # an identity that raises the scale and rescales at the next op, so the next op must be one
        # that is safe at scale 30: the offset subtraction (field arithmetic), not the clip's
        # comparisons, whose range checks cover scale-10 magnitudes only.
        shifted = node("Mul", [centred, k], f"{name}_scaled")
        for j, shift in enumerate(shifts):
            shifted = node("Mul", [shifted, shift], f"{name}_shift{j}")
        out = node("Sub", [shifted, off], name)
        if clip is None:
            return out
        # clip(x, -a, a) = relu(x + a) - relu(x - a) - a: a ReLU costs half a Min or Max.
        up = node("Relu", [node("Add", [out, clip], f"{name}_up")], f"{name}_relu_up")
        down = node("Relu", [node("Sub", [out, clip], f"{name}_down")], f"{name}_relu_down")
        return node("Sub", [node("Sub", [up, down], f"{name}_diff"), clip], f"{name}_clipped")

    # The baseline step is the reference the relative features are measured from (they are 0 there);
    # only its absolute features (the leading `absolute` columns: BLR) are used, as context.
    absolute = form.absolute_features
    first = step_sums[0]
    base = scale_and_clip(cut(first, 0, absolute, 2, "base_absolute"), absolute, "base_features")
    base_padded = pad(node("Reshape", [base, const("base_flat", [1, absolute], np.int64)], "base"),
                      n_features, 0, "base_pad")  # (1, n_inputs): zeros, then the baseline's BLR
    relative_ref = node("Mul", [first, const("first_mask", form.first_mask.reshape(1, 1, -1))], "first_masked")
    flat = const("flat", [1, n_features], np.int64)
    column = const("column", [u, 1], np.int64)
    one, half_unit = const("one", 1.0), const("half_unit", float(2 ** (DIVISION_STEP_BITS - 1)))
    step = shifts[0]  # 2**-10: one quantum, an exact step EZKL rescales with the next product

    # Every gate is (1 + squash(a * z)) / 2 with squash = tanh, a = 1/2 (sigmoid) or squash = hard_tanh,
    # a = 1/3 (Keras' hard_sigmoid, clip(z / 6 + 1/2, 0, 1)); the score likewise, a = 1/2 or 1/SCORE_SPAN.
    # Scale the gates' columns by a here (Keras order i, f, g, o; the candidate g is squash(z) itself).
    gate_scale = 1.0 / 3.0 if form.hard else 0.5
    logit_scale = 1.0 / form.score_span if form.hard else 0.5
    column_scale = np.full(4 * u, gate_scale)
    column_scale[2 * u:3 * u] = 1.0

    def squash(x: str, name: str) -> str:
        """``tanh(x)`` (a lookup), or ``hard_tanh(x) = relu(x + 1) - relu(x - 1) - 1`` (range checks only)."""
        if not form.hard:
            return node("Tanh", [x], name)
        up = node("Relu", [node("Add", [x, one], f"{name}_up")], f"{name}_relu_up")
        down = node("Relu", [node("Sub", [x, one], f"{name}_down")], f"{name}_relu_down")
        return node("Sub", [node("Sub", [up, down], f"{name}_diff"), one], name)

    kernel = const("kernel", form.kernel * column_scale)
    input_kernel = const("input_kernel", form.kernel[:n_inputs] * column_scale)
    bias = const("bias", (form.bias * column_scale).reshape(1, -1))

    def scaled_gate(z_scaled: str, name: str) -> str:
        """``2**10 * sigmoid(z)`` from ``a * z``: ``(1 + squash(a * z)) * 2**9`` (an integer: no rescale)."""
        t = node("Add", [squash(z_scaled, f"{name}_tanh"), one], f"{name}_twice")
        return node("Mul", [t, half_unit], f"{name}_scaled")

    def gate(z_scaled: str, name: str) -> str:
        """``sigmoid(z)`` one fixed-point scale up: the 2**-10 step only raises the scale, so the
        division happens in the rescale the gate's product needs anyway."""
        return node("Mul", [scaled_gate(z_scaled, name), step], name)

    def pair(a: str, b: str, name: str) -> str:
        """``(u,)`` and ``(u,)`` -> ``(u, 2)``, joined by padding and adding."""
        a2 = pad(node("Reshape", [a, column], f"{name}_a"), 0, 1, f"{name}_ap")
        b2 = pad(node("Reshape", [b, column], f"{name}_b"), 1, 0, f"{name}_bp")
        return node("Add", [a2, b2], name)

    h: str | None = None
    c: str | None = None
    for t in range(1, form.steps + 1):
        features = scale_and_clip(node("Sub", [step_sums[t], relative_ref], f"centred{t}"), n_features, f"features{t}")
        x_t = node("Add", [pad(node("Reshape", [features, flat], f"x{t}_flat"), 0, n_inputs - n_features, f"x{t}_pad"),
                           base_padded], f"x{t}")
        if h is None:  # the first LSTM step starts from h = c = 0: no recurrent product, nothing to forget
            z = node("Add", [node("MatMul", [x_t, input_kernel], f"z{t}_mm"), bias], f"z{t}")
        else:
            joined = node("Add", [pad(x_t, 0, u, f"x{t}_xpad"), pad(h, n_inputs, 0, f"h{t}_pad")], f"xh{t}")
            z = node("Add", [node("MatMul", [joined, kernel], f"z{t}_mm"), bias], f"z{t}")
        g = squash(cut(z, 2 * u, 3 * u, 1, f"g{t}_pre"), f"g{t}")
        o = gate(cut(z, 3 * u, 4 * u, 1, f"o{t}_half"), f"o{t}")
        if c is None:
            c = node("Mul", [gate(cut(z, 0, u, 1, f"i{t}_half"), f"i{t}"), g], f"c{t}")
        else:  # f*c + i*g as one product over the pair axis: (u, 2) . (u, 2) -> (u,)
            # Pair the gates before their 2**-10 step: an addition at the raised scale would be rescaled.
            gates = node("Mul", [pair(scaled_gate(cut(z, u, 2 * u, 1, f"f{t}_half"), f"f{t}"),
                                      scaled_gate(cut(z, 0, u, 1, f"i{t}_half"), f"i{t}"), f"gates{t}_scaled"),
                                 step], f"gates{t}")
            c = node("Reshape", [node("Einsum", [gates, pair(c, g, f"values{t}")], f"c{t}_sum",
                                      equation="jk,jk->j"), const(f"c{t}_shape", [1, u], np.int64)], f"c{t}")
        h = node("Mul", [o, squash(c, f"tanh_c{t}")], f"h{t}")
    if h is None:
        raise ModelError(f"circuit form with {form.steps} LSTM steps: the model needs at least one")
    # Node names predate hard activations ("half_logit", "risk_tanh"); kept so exports stay byte-identical.
    scaled_logit = node("Add", [node("MatMul", [h, const("dense_kernel", form.dense_kernel * logit_scale)], "logit_mm"),
                                const("dense_bias", form.dense_bias.reshape(1, -1) * logit_scale)], "half_logit")
    node("Mul", [node("Add", [squash(scaled_logit, "risk_tanh"), one], "risk_twice"), const("half", 0.5)], "risk")
    graph = helper.make_graph(
        nodes, "sentinel_risk",
        [helper.make_tensor_value_info(window_name, TensorProto.FLOAT, [1, form.window, n_features])],
        [helper.make_tensor_value_info("risk", TensorProto.FLOAT, [1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="sentinel",
                              ir_version=8)  # what opset 13 needs; onnxruntime and tract read it
    onnx.checker.check_model(model)
    encoded: bytes = model.SerializeToString(deterministic=True)
    return encoded
