"""The Keras risk model: raw window in, crash risk in [0, 1] out.

Every transformation from attested raw rows to the score is a layer of this
graph, so it is exported to ONNX and proven inside the circuit:

1. Multi-resolution average pooling (``model.pooling``, default
   ``40:40,8:4,2:2``): the oldest 40 rows become one baseline step, the
   newest 10 rows steps of 4, 4 and 2, so the model sees the present almost
   row by row. Proving cost grows with recurrent steps; averaging is linear
   and cheap, and pooling first leaves 16 values, not 200, for the feature
   layer.
2. ``WindowFeatures`` (fixed constants fitted on training rows only): blr is
   standardised, ``(blr - mean) / std``; buy and sell volume become their
   change since the first (baseline) step in training standard deviations
   (depth flows, free of the slowly wandering depth level); mid price
   becomes its change since the baseline in percent of the training median
   price. The baseline step itself is context, not a recurrent step: its
   BLR joins every later step as a fifth feature, so the LSTM runs one step
   fewer (default 3) and sees where depth stood before the recent rows. The
   scale constants sit on a grid (:data:`SCALE_BITS`) so that the circuit
   applies them exactly as an integer multiply and two fixed-point shifts.
   All linear: no lookup tables, so raw prices of 60,000 cost nothing extra.
3. ``LSTM(units, unroll=True)`` (unrolled: the circuit has no loops; the
   export writes each step out, :mod:`sentinel.model.circuit_form`). Its
   weights are constrained (L1 norm per gate column, |bias|) so that, with
   features clipped, no sigmoid input can exceed
   ``model.preactivation_bound``. The candidate gate is held to half that:
   the circuit computes ``sigmoid(x)`` as ``(1 + tanh(x / 2)) / 2`` and so
   needs one tanh lookup table over half the bound.
   :func:`activation_bound` computes the exact bound from the trained
   weights, and the circuit sizes that table from it instead of from what
   calibration happened to see.
4. ``Dense(1, sigmoid)``, its pre-activation bounded the same way, or tighter
   (``model.output_bound``): the L1 norm of its weights multiplies the hidden
   state's fixed-point rounding into the score, so it sets the circuit's
   fidelity at a given scale.

``model.activations = "hard"`` (the default) swaps sigmoid and tanh for
Keras' ``hard_sigmoid`` and ``hard_tanh`` and the output sigmoid for a
clipped line (:data:`SCORE_SPAN`): piecewise linear, so the circuit needs no
lookup table (docs/circuit-sweep.md, 11). Trained from scratch it catches
fewer crashes than the smooth model; it is trained from one instead
(:func:`hard_from_smooth`, docs/circuit-sweep.md, 12).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from sentinel.model.backend import import_keras

#: A ``keras.Model`` (keras ships no type information).
KerasModel: TypeAlias = Any


#: The circuit form (:mod:`sentinel.model.circuit_form`) applies a feature's
#: scale as an integer multiplier ``K`` and a division by ``2**SCALE_BITS``,
#: taken as two exact fixed-point steps of ``2**-10`` (one rescale each at
#: the circuit's scale 10). For that to be the model's own math, the Keras
#: layer uses scale constants on the grid ``L * 2**-SCALE_BITS``, ``L`` the
#: least common multiple of the pool sizes (the circuit pools with integer
#: weights ``L / pool``). The grid moves 1/std by at most half a step, under
#: 2 % for the volumes: a fixed normalisation constant, trained with.
SCALE_BITS = 20

#: Keras activations of the LSTM's gates and of its candidate and cell, per ``model.activations``.
ACTIVATIONS = {"smooth": ("sigmoid", "tanh"), "hard": ("hard_sigmoid", "hard_tanh")}

#: With hard activations the score is ``clip(1/2 + logit / (2 * SCORE_SPAN), 0, 1)`` (:class:`RiskScore`):
#: piecewise linear like the gates, saturating only at |logit| >= SCORE_SPAN (a sigmoid of 0.9997),
#: so confident windows still rank. The model trains on the logit (cross-entropy with a sigmoid).
SCORE_SPAN = 8.0
#: Name of that score layer: its presence marks a model that ends in a logit.
SCORE_LAYER = "score"
#: Gain on the sigmoid gates' weights when a hard model starts from a smooth one: Keras'
#: ``hard_sigmoid(x) = clip(x / 6 + 1/2, 0, 1)``, so ``hard_sigmoid(1.5 x) = clip(x / 4 + 1/2, 0, 1)``,
#: the sigmoid's tangent at 0. ``hard_tanh`` already is the tanh's tangent at 0 (gain 1).
HARD_GATE_GAIN = 1.5

#: 1 where a feature is measured from the first pooled step (volumes, price), 0 where absolute (BLR).
FROM_FIRST_STEP = (0.0, 1.0, 1.0, 1.0)

#: The candidate gate's share of the pre-activation bound. The circuit computes
#: ``sigmoid(x) = (1 + tanh(x / 2)) / 2``, so its one tanh table spans half the
#: bound; the candidate gate's ``tanh(g)`` must fit that same table.
CANDIDATE_SHARE = 0.5


def scale_grid(pooling: tuple[tuple[int, int], ...]) -> float:
    """The grid feature scale constants sit on for ``pooling`` (see :data:`SCALE_BITS`)."""
    return math.lcm(*(pool for _, pool in pooling)) / 2.0**SCALE_BITS


def feature_scales(std: list[float], price_ref: float, grid: float = 0.0) -> list[float]:
    """The four feature scale constants, 1/std for BLR and volumes and 100/price_ref, on ``grid`` (0 = exact)."""
    if not all(math.isfinite(v) and v > 0 for v in (*std[:3], price_ref)):
        raise ValueError(f"feature scales need finite and positive std and price_ref, got {list(std)}, {price_ref}")
    raw = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2], 100.0 / price_ref]
    if grid <= 0:
        return raw
    return [max(1, round(c / grid)) * grid for c in raw]


@functools.cache
def window_features_layer() -> type[Any]:
    """The ``WindowFeatures`` layer class (defined lazily: keras is a heavy import)."""
    keras = import_keras()
    layer: Any = keras.layers.Layer  # a base class must be a name for mypy; keras is untyped

    @keras.saving.register_keras_serializable(package="sentinel")
    class WindowFeatures(layer):
        """Fixed, linear feature transform on pooled steps (see module doc)."""

        def __init__(self, mean: list[float], std: list[float], price_ref: float, clip: float = 0.0,
                     scale_grid: float = 0.0, *, baseline: bool = False, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.mean = [float(v) for v in mean]
            self.std = [float(v) for v in std]
            self.price_ref = float(price_ref)
            self.clip = float(clip)
            self.scale_grid = float(scale_grid)
            # True: the first step is context, not an LSTM step (its BLR joins every later step).
            # False: models from before that change, every step an LSTM step.
            self.baseline = bool(baseline)

        def call(self, x: Any) -> Any:
            ops = keras.ops
            # Reference per feature: the BLR's training mean; the first step for volumes and price.
            first = x[:, 0:1, :] * ops.convert_to_tensor(list(FROM_FIRST_STEP), dtype=x.dtype)
            reference = first + ops.convert_to_tensor([self.mean[0], 0.0, 0.0, 0.0], dtype=x.dtype)
            centred = x - reference
            features = centred * ops.convert_to_tensor(feature_scales(self.std, self.price_ref, self.scale_grid),
                                                         dtype=x.dtype)
            # Bounded features bound the LSTM's gate pre-activations, hence the
            # circuit's lookup table (its size sets the proof's rows).
            if self.clip > 0:
                features = ops.clip(features, -self.clip, self.clip)
            if not self.baseline:
                return features
            later = features[:, 1:, :]
            # The baseline's absolute feature (BLR, column 0 of FROM_FIRST_STEP), repeated per later step.
            base_blr = ops.zeros_like(later[:, :, 0:1]) + features[:, 0:1, 0:1]  # (batch, steps - 1, 1)
            return ops.concatenate([later, base_blr], axis=-1)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "mean": self.mean, "std": self.std, "price_ref": self.price_ref,
                    "clip": self.clip, "scale_grid": self.scale_grid, "baseline": self.baseline}

    return WindowFeatures


#: Shares of the pre-activation bound: inputs, recurrence and bias of each gate
#: (the output layer splits it between its weights and its bias the same way).
BOUND_SHARES = {"kernel": 0.5, "recurrent": 0.35, "bias": 0.15}


@functools.cache
def bound_constraints() -> tuple[type[Any], type[Any]]:
    """``(L1ColumnBound, AbsBound)`` Keras constraint classes (defined lazily)."""
    keras = import_keras()
    constraint: Any = keras.constraints.Constraint  # a base class must be a name for mypy; keras is untyped

    def as_bound(bound: float | list[float]) -> float | list[float]:
        """One bound for every column/entry, or one each (kept as a list: it is saved in the config)."""
        return [float(b) for b in bound] if isinstance(bound, (list, tuple)) else float(bound)

    @keras.saving.register_keras_serializable(package="sentinel")
    class L1ColumnBound(constraint):
        """Scale each column down so its L1 norm is at most ``bound`` (one number, or one per column)."""

        def __init__(self, bound: float | list[float]) -> None:
            self.bound = as_bound(bound)

        def __call__(self, w: Any) -> Any:
            ops = keras.ops
            norms = ops.sum(ops.abs(w), axis=0, keepdims=True)
            bound = ops.convert_to_tensor(self.bound, dtype=w.dtype)
            return w * ops.minimum(1.0, bound / ops.maximum(norms, 1e-12))

        def get_config(self) -> dict[str, Any]:
            return {"bound": self.bound}

    @keras.saving.register_keras_serializable(package="sentinel")
    class AbsBound(constraint):
        """Clip every entry to +-``bound`` (one number, or one per entry)."""

        def __init__(self, bound: float | list[float]) -> None:
            self.bound = as_bound(bound)

        def __call__(self, w: Any) -> Any:
            bound = keras.ops.convert_to_tensor(self.bound, dtype=w.dtype)
            return keras.ops.clip(w, -bound, bound)

        def get_config(self) -> dict[str, Any]:
            return {"bound": self.bound}

    return L1ColumnBound, AbsBound


def activation_bound(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray, dense_kernel: np.ndarray,
                     dense_bias: np.ndarray, feature_clip: float, steps: int) -> dict[str, float]:
    """Largest |input| the circuit's lookup table can see, from the model's weights alone.

    ``kernel`` (F, 4u), ``recurrent`` (u, 4u), ``bias`` (4u,) are the LSTM's;
    ``dense_kernel`` (u, 1), ``dense_bias`` (1,) the output layer's. With
    features in +-``feature_clip`` and hidden states in (-1, 1), gate ``j``'s
    pre-activation is at most ``clip * sum|W[:, j]| + sum|U[:, j]| + |b[j]|``;
    the cell state obeys ``|c_t| <= sigmoid(F) |c_(t-1)| + sigmoid(I) tanh(G)``
    with those gate bounds, so it stays below ``steps``; the output
    pre-activation is at most ``sum|w| + |b|``. The circuit computes every
    ``sigmoid(x)`` as ``(1 + tanh(x / 2)) / 2``, so its one lookup table is
    a tanh table whose inputs are the halved sigmoid inputs, the candidate
    gate and the cell state. ``max`` sizes that table, so every window is
    provable by construction rather than by what calibration happened to
    see.
    """
    if not feature_clip > 0:
        raise ValueError("an activation bound needs clipped features (feature_clip > 0)")
    per_column = feature_clip * np.abs(kernel).sum(axis=0) + np.abs(recurrent).sum(axis=0) + np.abs(bias)
    units = recurrent.shape[0]
    i_max, f_max, g_max, o_max = (per_column[k * units:(k + 1) * units] for k in range(4))  # Keras order i, f, g, o

    def sigmoid(v: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-v)))

    cell = np.zeros(units)
    for _ in range(steps):  # |c_t| <= f_max |c_{t-1}| + i_max * g_max, per unit
        cell = sigmoid(f_max) * cell + sigmoid(i_max) * np.tanh(g_max)
    gate = float(max(i_max.max(), f_max.max(), o_max.max()))
    candidate, cell_max = float(g_max.max()), float(cell.max())
    output = float(np.abs(dense_kernel).sum() + np.abs(dense_bias).sum())
    return {"gate": gate, "candidate": candidate, "cell": cell_max, "output": output,
            "max": max(gate / 2, candidate, cell_max, output / 2)}


def model_activation_bound(model: KerasModel, feature_clip: float) -> dict[str, float]:
    """:func:`activation_bound` of a built Sentinel model (its ``lstm`` and ``risk`` layers)."""
    kernel, recurrent, bias = (np.asarray(w) for w in model.get_layer("lstm").get_weights())
    dense_kernel, dense_bias = (np.asarray(w) for w in model.get_layer("risk").get_weights())
    steps = int(model.get_layer("lstm").input.shape[1])  # the LSTM's own steps (the baseline is not one)
    return activation_bound(kernel, recurrent, bias, dense_kernel, dense_bias, feature_clip, steps)


def build_model(
    pooling: tuple[tuple[int, int], ...], units: int, mean: np.ndarray, std: np.ndarray, price_ref: float, seed: int,
    clip: float = 0.0, preactivation_bound: float = 0.0, output_bound: float = 0.0, activations: str = "smooth",
) -> KerasModel:
    """A Keras model, input (batch, window, 4), output (batch, 1); window = sum of pooling rows.

    The first pooled step is the baseline (see the module doc): ``pooling``
    must give at least two steps, and the LSTM runs over all but the first.
    ``preactivation_bound`` > 0 constrains the weights (L1 per gate column,
    |bias|; split by :data:`BOUND_SHARES`) so that every sigmoid gate and the
    output pre-activation stay within it for features clipped to +-``clip``,
    and the candidate gate within :data:`CANDIDATE_SHARE` of it.
    ``output_bound`` > 0 bounds the output layer tighter: its L1 norm
    multiplies the hidden state's fixed-point rounding into the score.
    ``activations`` (:data:`ACTIVATIONS`): ``"hard"`` ends in a ``Dense(1)``
    logit and a ``score`` layer (:data:`SCORE_SPAN`) instead of a sigmoid.
    """
    keras = import_keras()
    window = sum(rows for rows, _ in pooling)
    window_features = window_features_layer()
    inputs = keras.Input((window, 4), name="window")
    steps = []
    start = 0
    for i, (rows, pool) in enumerate(pooling):
        segment = keras.layers.Cropping1D((start, window - start - rows), name=f"rows_{start}_{start + rows}")(inputs)
        if pool > 1:
            segment = keras.layers.AveragePooling1D(pool_size=pool, name=f"pool_{i}")(segment)
        steps.append(segment)
        start += rows
    n_steps = sum(rows // pool for rows, pool in pooling)
    if n_steps < 2:
        raise ValueError(
            f"pooling {pooling} gives {n_steps} step; the model needs a baseline step and at least one more")
    x = steps[0] if len(steps) == 1 else keras.layers.Concatenate(axis=1, name="steps")(steps)
    x = window_features(list(mean), list(std), price_ref, clip, scale_grid(pooling), baseline=True, name="features")(x)
    constraints: dict[str, Any] = {}
    dense_constraints: dict[str, Any] = {}
    if preactivation_bound > 0:
        if not clip > 0:
            raise ValueError("preactivation_bound needs feature_clip > 0 (unclipped features are unbounded)")
        l1_column_bound, abs_bound = bound_constraints()
        b, share = preactivation_bound, BOUND_SHARES
        # Per gate column, Keras order i, f, g, o: the candidate g gets CANDIDATE_SHARE of the bound.
        column = np.repeat([1.0, 1.0, CANDIDATE_SHARE, 1.0], units) * b
        constraints = {
            "kernel_constraint": l1_column_bound((column * share["kernel"] / clip).tolist()),
            "recurrent_constraint": l1_column_bound((column * share["recurrent"]).tolist()),
            "bias_constraint": abs_bound((column * share["bias"]).tolist()),
        }
        out = output_bound if output_bound > 0 else b
        dense_constraints = {
            "kernel_constraint": l1_column_bound(out * (1.0 - share["bias"])),
            "bias_constraint": abs_bound(out * share["bias"]),
        }
    gate, candidate = ACTIVATIONS[activations]
    x = keras.layers.LSTM(
        units,
        activation=candidate,
        recurrent_activation=gate,
        unroll=True,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
        name="lstm",
        **constraints,
    )(x)
    outputs = keras.layers.Dense(
        1, activation="sigmoid" if activations == "smooth" else None,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), name="risk", **dense_constraints,
    )(x)
    if activations == "hard":
        outputs = risk_score_layer()(SCORE_SPAN, name=SCORE_LAYER)(outputs)
    return keras.Model(inputs, outputs, name="sentinel_risk")


def hard_from_smooth(smooth: KerasModel, hard: KerasModel) -> None:
    """Start ``hard`` (``activations="hard"``) from the trained ``smooth`` model of the same shape.

    Each activation is replaced by its tangent at 0: the input, recurrent and
    bias weights of the LSTM's sigmoid gates (Keras order i, f, g, o: all but
    g) are multiplied by :data:`HARD_GATE_GAIN`, the candidate's are kept, and
    the output layer keeps its weights: the hard model's logit is the smooth
    model's sigmoid input, and both train on it with the same sigmoid
    cross-entropy. Near 0 the two models agree; fine-tuning fits the rest.
    """
    kernel, recurrent, bias = (np.asarray(w) for w in smooth.get_layer("lstm").get_weights())
    units = recurrent.shape[0]
    gain = np.repeat([HARD_GATE_GAIN, HARD_GATE_GAIN, 1.0, HARD_GATE_GAIN], units)
    hard.get_layer("lstm").set_weights([kernel * gain, recurrent * gain, bias * gain])
    hard.get_layer("risk").set_weights(smooth.get_layer("risk").get_weights())


def score_layer(model: KerasModel) -> Any:
    """``model``'s :class:`RiskScore` layer (a hard model's), or None (a smooth model ends in a sigmoid)."""
    return next((layer for layer in model.layers if layer.name == SCORE_LAYER), None)


def logit_model(model: KerasModel) -> KerasModel | None:
    """The part of ``model`` up to its logit (sharing weights), or None if it ends in a sigmoid."""
    keras = import_keras()
    if score_layer(model) is None:
        return None
    return keras.Model(model.inputs, model.get_layer("risk").output, name="sentinel_logit")


@functools.cache
def risk_score_layer() -> type[Any]:
    """The ``RiskScore`` Keras layer class (defined lazily)."""
    keras = import_keras()
    layer: Any = keras.layers.Layer  # a base class must be a name for mypy; keras is untyped

    @keras.saving.register_keras_serializable(package="sentinel")
    class RiskScore(layer):
        """``clip(1/2 + logit / (2 * span), 0, 1)``: a hard sigmoid of the logit."""

        def __init__(self, span: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.span = float(span)

        def call(self, x: Any) -> Any:
            return keras.ops.clip(0.5 + x / (2.0 * self.span), 0.0, 1.0)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "span": self.span}

    return RiskScore


def load_model(path: Path) -> KerasModel:
    """Load a saved model (registers the custom layer first)."""
    keras = import_keras()
    window_features_layer()
    bound_constraints()
    risk_score_layer()
    return keras.saving.load_model(path, compile=False)
