"""Baselines score what they claim to, and the verdict logic is honest."""

from __future__ import annotations

from typing import Any

import numpy as np

from sentinel.model.baselines import BlrThreshold, LogisticWindow, OrderImbalance, SeedRule, summary_features
from sentinel.model.dataset import LabeledWindows
from sentinel.model.evaluate import compare


def windows(blr_last: list[float]) -> np.ndarray:
    x = np.ones((len(blr_last), 50, 4), dtype=np.float32)
    x[:, :, 1] = 1200.0
    x[:, :, 2] = 1000.0
    x[:, :, 3] = 3000.0
    x[:, :, 0] = 1.2
    x[:, -1, 0] = blr_last
    return x


def test_seed_rule_is_blr_below_0_4_on_the_last_row():
    assert SeedRule().score(windows([0.39, 0.4, 1.0])).tolist() == [1.0, 0.0, 0.0]


def test_blr_threshold_is_monotone_decreasing_in_blr():
    s = BlrThreshold().score(windows([0.3, 0.6, 1.2]))
    assert s[0] > s[1] > s[2]


def test_order_imbalance_scores_sell_pressure_high():
    x = windows([1.2, 1.2])
    x[0, -10:, 2] = np.linspace(1000, 2000, 10)  # sell depth piling up
    x[1, -10:, 1] = np.linspace(1200, 2400, 10)  # buy depth piling up
    s = OrderImbalance().score(x)
    assert s[0] > 0.5 > s[1]


def test_logistic_learns_a_separable_signal():
    rng = np.random.default_rng(0)
    n = 400
    x = np.ones((n, 50, 4), dtype=np.float32) * np.array([1.2, 1200, 1000, 3000], dtype=np.float32)
    x *= rng.uniform(0.95, 1.05, size=(n, 50, 4)).astype(np.float32)
    y = (rng.random(n) < 0.3).astype(np.float32)
    x[y == 1, -20:, 3] *= np.linspace(1.0, 0.9, 20, dtype=np.float32)  # positives: price falling
    model = LogisticWindow(seed=0)
    model.fit(LabeledWindows(x, y, np.zeros(n), np.arange(n)))
    s = model.score(x)
    assert s[y == 1].mean() > 0.8
    assert s[y == 0].mean() < 0.2
    assert summary_features(x).shape == (n, 12)


def _res(recall: float, lead: float | None, ft: float) -> dict[str, Any]:
    return {"test": {"event_recall": recall, "median_lead_rows": lead, "false_trips_per_10k": ft}}


def test_verdict_requires_beating_every_comparable_baseline_on_lead():
    results = {"lstm": _res(0.95, 40, 0.5), "a": _res(0.95, 30, 0.0), "b": _res(0.9, 45, 0.2)}
    verdict = compare(results, "lstm", budget=1.0)["test"]
    assert verdict["beats_all_baselines"] is False  # b has a longer lead at a lower false-trip rate
    results["b"] = _res(0.9, 45, 3.0)  # b now trips falsely far more often: not comparable
    verdict = compare(results, "lstm", budget=1.0)["test"]
    assert verdict["beats_all_baselines"] is True
    assert any("not comparable" in d for d in verdict["details"])
