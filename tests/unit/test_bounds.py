"""The proven activation bound and the lookup tables sized from it."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.model.network import activation_bound
from sentinel.zk.build import RESERVED_ROWS, size_lookup_tables, table_columns

Weights = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _lstm(rng: np.random.Generator, features: int = 4, units: int = 3) -> Weights:
    return (rng.normal(size=(features, 4 * units)), rng.normal(size=(units, 4 * units)), rng.normal(size=4 * units),
            rng.normal(size=(units, 1)), rng.normal(size=1))


def _table_inputs(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray, dense_kernel: np.ndarray,
                  dense_bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Every lookup-table input of an LSTM + Dense run over x (steps, features), in float64.

    The circuit computes sigmoid(v) as (1 + tanh(v / 2)) / 2 with one tanh table: the sigmoid gates and
    the output enter it halved, the candidate gate and the cell state as they are.
    """
    units = recurrent.shape[0]
    h, c, seen = np.zeros(units), np.zeros(units), []
    for step in x:
        z = step @ kernel + h @ recurrent + bias
        i, f, g, o = (z[k * units:(k + 1) * units] for k in range(4))
        seen.extend([i / 2, f / 2, o / 2, g])
        c = 1 / (1 + np.exp(-f)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
        seen.append(c)
        h = 1 / (1 + np.exp(-o)) * np.tanh(c)
    seen.append((h @ dense_kernel + dense_bias) / 2)
    return np.concatenate(seen)


def test_bound_holds_for_adversarial_windows() -> None:
    rng = np.random.default_rng(0)
    weights = _lstm(rng)
    bound = activation_bound(*weights, feature_clip=4.0, steps=6)
    worst = 0.0
    for _ in range(300):
        x = rng.choice([-4.0, 4.0], size=(6, 4)) * rng.uniform(0.5, 1.0, size=(6, 4))  # extremes of the clip
        worst = max(worst, float(np.max(np.abs(_table_inputs(*weights, x)))))
    assert worst <= bound["max"]
    assert worst > 0.5 * bound["max"]  # the bound is not vacuous
    assert bound["cell"] < 6  # tighter than one per step


def test_bound_is_reached_by_the_worst_window() -> None:
    """A one-step model with hidden state 0: the gate bound is attained exactly."""
    kernel = np.array([[1.0, -2.0, 0.5, 0.0], [0.5, 1.0, -1.0, 0.25]])
    bias = np.array([0.1, -0.2, 0.3, 0.0])
    bound = activation_bound(kernel, np.zeros((1, 4)), bias, np.array([[2.0]]), np.array([-1.0]), 3.0, steps=1)
    x = -np.sign(kernel[:, 1]) * 3.0  # pushes gate 1 to its extreme (the side its bias is on)
    assert bound["gate"] == pytest.approx(abs(x @ kernel[:, 1] + bias[1]))  # f: 9.2
    assert bound["candidate"] == pytest.approx(4.8)
    assert bound["output"] == 3.0
    assert bound["cell"] == pytest.approx(1 / (1 + np.exp(-4.6)) * np.tanh(4.8))  # i gate 4.6, g gate 4.8
    assert bound["max"] == pytest.approx(4.8)  # the candidate's tanh; the sigmoid inputs enter the table halved


def test_bound_needs_clipped_features() -> None:
    with pytest.raises(ValueError, match="feature_clip"):
        activation_bound(*_lstm(np.random.default_rng(1)), feature_clip=0.0, steps=4)


def test_tables_sized_from_bound() -> None:
    args = {"input_scale": 10, "decomp_base": 4096, "lookup_range": [-99999, 99999], "logrows": 18}
    sized = size_lookup_tables(args, num_rows=15_000, bound=7.0)
    low, high = sized["lookup_range"]
    assert low == -high and high >= 7.0 * 1024
    assert sized["logrows"] == 14  # 15k rows fit 2^14
    assert table_columns(sized) == 1  # so does the 2 * 7.3k + 1 entry table
    assert 2**sized["logrows"] - RESERVED_ROWS >= max(15_000, high - low + 1)
    assert args["logrows"] == 18  # the input is not modified


def test_long_tables_take_rows_or_columns() -> None:
    args = {"input_scale": 10, "decomp_base": 4096}
    one = size_lookup_tables(args, num_rows=15_000, bound=15.0)
    assert (one["logrows"], table_columns(one)) == (15, 1)  # 2 * 15.7k + 1 entries need 2^15 rows
    two = size_lookup_tables(args, num_rows=15_000, bound=15.0, max_columns=2)
    assert (two["logrows"], table_columns(two)) == (14, 2)
    assert two["lookup_range"] == one["lookup_range"]
    eight = size_lookup_tables({**args, "input_scale": 12}, 15_000, 15.0, max_columns=8)
    assert (eight["logrows"], table_columns(eight)) == (14, 8)


def test_rows_and_range_checks_set_logrows() -> None:
    args = {"input_scale": 11, "decomp_base": 4096}
    assert size_lookup_tables(args, num_rows=20_000, bound=1.0)["logrows"] == 15  # rows decide
    assert size_lookup_tables(args, num_rows=1_000, bound=0.1)["logrows"] == 13  # the range-check table decides
    assert size_lookup_tables({**args, "decomp_base": 16384}, num_rows=1_000, bound=0.1)["logrows"] == 15


def test_feature_scales_sit_on_the_circuit_forms_grid() -> None:
    """The circuit form applies each scale as integer * 2**-SCALE_BITS / L: the layer's constants must be that."""
    from sentinel.model.network import SCALE_BITS, feature_scales, scale_grid

    grid = scale_grid(((40, 40), (8, 4), (2, 2)))
    assert grid == 40 / 2**SCALE_BITS
    std, price_ref = [0.26, 756.5, 574.0], 2954.0
    exact = feature_scales(std, price_ref)
    assert exact == [1 / 0.26, 1 / 756.5, 1 / 574.0, 100 / 2954.0]
    on_grid = feature_scales(std, price_ref, grid)
    steps = [s / grid for s in on_grid]
    assert all(abs(k - round(k)) < 1e-9 and round(k) >= 1 for k in steps)
    assert all(abs(a - b) <= grid / 2 + 1e-15 for a, b in zip(on_grid, exact, strict=True))
    with pytest.raises(ValueError, match="finite and positive"):
        feature_scales([0.0, 1.0, 1.0], price_ref, grid)
