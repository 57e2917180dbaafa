"""The Keras risk model: raw window in, crash risk in [0, 1] out.

Every transformation from attested raw rows to the score is a layer of this
graph, so it is exported to ONNX and proven inside the circuit:

1. Multi-resolution average pooling (``model.pooling``, default ``40:8,10:2``):
   the oldest 40 rows become 5 steps of 8 rows, the newest 10 rows 5 steps of
   2, so the LSTM runs 10 steps yet sees the present almost row by row.
   Proving cost grows with recurrent steps; averaging is linear and cheap, and
   pooling first leaves 40 values, not 200, for the feature layer.
2. ``WindowFeatures`` (fixed constants fitted on training rows only): blr is
   standardised, ``(blr - mean) / std``; buy and sell volume become their
   change since the first step in training standard deviations (depth flows,
   free of the slowly wandering depth level); mid price becomes its change
   since the first step in percent of the training median price. Each scale
   constant is a power of two times a mantissa in [1, 2); the export splits
   the power into exact steps of at most 2**-4 so fixed-point quantisation in
   the circuit keeps it accurate (1/800 at scale 8 would otherwise become 0). All linear: no
   lookup tables, so raw prices of 60,000 cost nothing extra.
3. ``LSTM(units, unroll=True)``: unrolled so tf2onnx emits plain
   MatMul/Sigmoid/Tanh instead of an ONNX ``Loop`` (which EZKL cannot compile).
4. ``Dense(1, sigmoid)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

FEATURE_NAMES = ("blr", "buy_volume", "sell_volume", "mid_price")


def _keras():  # noqa: ANN202
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def pow2_split(c: float) -> tuple[float, float]:
    """``c = 2**-k * m`` with ``m`` in [1, 2): both factors survive fixed-point quantisation.

    A constant like 1/800 quantised at scale 11 becomes 3/2048 (17 % off); 2**-10
    is exact at that scale and the mantissa keeps 11 bits.
    """
    if not c > 0:
        raise ValueError(f"scale constant must be positive, got {c}")
    k = math.floor(math.log2(c))
    return 2.0**k, c / 2.0**k


@functools.cache
def window_features_layer():  # noqa: ANN201
    """The ``WindowFeatures`` layer class (defined lazily: keras is a heavy import)."""
    keras = _keras()

    @keras.saving.register_keras_serializable(package="sentinel")
    class WindowFeatures(keras.layers.Layer):
        """Fixed, linear feature transform on pooled steps (see module doc)."""

        def __init__(self, mean: list[float], std: list[float], price_ref: float, clip: float = 0.0,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.mean = [float(v) for v in mean]
            self.std = [float(v) for v in std]
            self.price_ref = float(price_ref)
            self.clip = float(clip)

        def call(self, x):  # noqa: ANN001, ANN201
            ops = keras.ops
            # Reference per feature: the BLR's training mean; the first step for volumes and price.
            first = x[:, 0:1, :] * ops.convert_to_tensor([0.0, 1.0, 1.0, 1.0], dtype=x.dtype)
            reference = first + ops.convert_to_tensor([self.mean[0], 0.0, 0.0, 0.0], dtype=x.dtype)
            scale = [1.0 / self.std[0], 1.0 / self.std[1], 1.0 / self.std[2], 100.0 / self.price_ref]
            power, mantissa = zip(*(pow2_split(c) for c in scale))
            centred = x - reference
            features = (centred * ops.convert_to_tensor(list(power), dtype=x.dtype)) * ops.convert_to_tensor(
                list(mantissa), dtype=x.dtype
            )
            # Bounded features bound the LSTM's gate pre-activations, hence the
            # circuit's sigmoid/tanh lookup table (its size sets the proof's rows).
            return ops.clip(features, -self.clip, self.clip) if self.clip > 0 else features

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "mean": self.mean, "std": self.std, "price_ref": self.price_ref,
                    "clip": self.clip}

    return WindowFeatures


def build_model(
    pooling: tuple[tuple[int, int], ...], units: int, mean: np.ndarray, std: np.ndarray, price_ref: float, seed: int,
    clip: float = 0.0, max_norm: float = 0.0,
):  # noqa: ANN201
    """A Keras model, input (batch, window, 4), output (batch, 1); window = sum of pooling rows."""
    keras = _keras()
    window = sum(rows for rows, _ in pooling)
    WindowFeatures = window_features_layer()
    inputs = keras.Input((window, 4), name="window")
    steps = []
    start = 0
    for i, (rows, pool) in enumerate(pooling):
        segment = keras.layers.Cropping1D((start, window - start - rows), name=f"rows_{start}_{start + rows}")(inputs)
        if pool > 1:
            segment = keras.layers.AveragePooling1D(pool_size=pool, name=f"pool_{i}")(segment)
        steps.append(segment)
        start += rows
    x = steps[0] if len(steps) == 1 else keras.layers.Concatenate(axis=1, name="steps")(steps)
    x = WindowFeatures(list(mean), list(std), price_ref, clip, name="features")(x)
    # Max-norm on the LSTM's weights bounds gate pre-activations (with bounded
    # features), which keeps the circuit's lookup tables small.
    constraint = keras.constraints.MaxNorm(max_norm, axis=0) if max_norm > 0 else None
    x = keras.layers.LSTM(
        units,
        unroll=True,
        kernel_constraint=constraint,
        recurrent_constraint=constraint,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
        name="lstm",
    )(x)
    outputs = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), name="risk"
    )(x)
    return keras.Model(inputs, outputs, name="sentinel_risk")


def load_model(path):  # noqa: ANN001, ANN201
    """Load a saved model (registers the custom layer first)."""
    keras = _keras()
    window_features_layer()
    return keras.saving.load_model(path, compile=False)
