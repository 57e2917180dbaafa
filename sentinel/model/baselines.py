"""Baseline detectors the LSTM must beat, behind one small interface.

Every detector maps windows ``x`` of shape (n, W, 4) to risk scores (n,),
higher meaning riskier. Baselines see exactly the windows the LSTM sees and
are tuned (where they have a threshold) on the same validation episodes.

* ``seed_rule``: the seed crawler's alert, ``blr < 0.4`` on the last row,
  with no tuning;
* ``blr_threshold``: the last row's BLR against a threshold tuned on validation;
* ``logistic``: scikit-learn logistic regression on window summary features
  (levels, minima, slopes, returns, volatility), scaler fitted on train only;
* ``order_imbalance``: order-flow imbalance in the spirit of Cont, Kukanov and
  Stoikov: net change of buy minus sell depth over the last 10 rows, scaled by
  mean depth; selling pressure scores high.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sentinel.model.dataset import LabeledWindows

BLR, BUY, SELL, PRICE = 0, 1, 2, 3
SEED_BLR_ALERT = 0.4


class Detector(Protocol):
    """Anything that scores windows."""

    name: str
    #: False when the detector's threshold is fixed (not tuned on validation).
    tuned: bool

    def fit(self, train: LabeledWindows) -> None: ...

    def score(self, x: np.ndarray) -> np.ndarray: ...


class SeedRule:
    """``blr < 0.4`` on the window's last row: score 1 or 0."""

    name = "seed_rule"
    tuned = False

    def fit(self, train: LabeledWindows) -> None:
        return None

    def score(self, x: np.ndarray) -> np.ndarray:
        return (x[:, -1, BLR] < SEED_BLR_ALERT).astype(np.float64)


class BlrThreshold:
    """Monotone map of the last row's BLR to (0, 1): exp(-blr)."""

    name = "blr_threshold"
    tuned = True

    def fit(self, train: LabeledWindows) -> None:
        return None

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.exp(-x[:, -1, BLR].astype(np.float64))


def summary_features(x: np.ndarray) -> np.ndarray:
    """Scale-free summary of each window, shape (n, 12)."""
    x = x.astype(np.float64)
    log_blr = np.log(x[:, :, BLR])
    log_buy = np.log(x[:, :, BUY])
    log_sell = np.log(x[:, :, SELL])
    log_price = np.log(x[:, :, PRICE])
    t = np.arange(x.shape[1], dtype=np.float64)
    t = (t - t.mean()) / np.sum((t - t.mean()) ** 2)

    def slope(v: np.ndarray) -> np.ndarray:
        per_window: np.ndarray = v @ t
        return per_window

    returns = np.diff(log_price, axis=1)
    return np.column_stack([
        log_blr[:, -1], log_blr.mean(1), log_blr.min(1), slope(log_blr),
        log_buy[:, -1] - log_buy.mean(1), log_sell[:, -1] - log_sell.mean(1),
        slope(log_buy), slope(log_sell),
        log_price[:, -1] - log_price[:, 0], log_price[:, -1] - log_price.max(1),
        returns.std(1), returns[:, -10:].std(1),
    ])


class LogisticWindow:
    """Logistic regression on :func:`summary_features` (balanced class weights)."""

    name = "logistic"
    tuned = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._pipeline: Any = None  # a fitted sklearn Pipeline (sklearn is untyped)

    def fit(self, train: LabeledWindows) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self._pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=2000, random_state=self.seed),
        )
        self._pipeline.fit(summary_features(train.x), train.y.astype(int))

    def score(self, x: np.ndarray) -> np.ndarray:
        if self._pipeline is None:
            from sentinel.errors import ModelError

            raise ModelError("logistic baseline used before fit()")
        positive: np.ndarray = self._pipeline.predict_proba(summary_features(x))[:, 1]
        return positive


class OrderImbalance:
    """Net depth flow over the last ``lookback`` rows: sell pressure scores high."""

    name = "order_imbalance"
    tuned = True

    def __init__(self, lookback: int = 10) -> None:
        self.lookback = lookback

    def fit(self, train: LabeledWindows) -> None:
        return None

    def score(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)[:, -(self.lookback + 1) :, :]
        flow = np.diff(x[:, :, BUY], axis=1) - np.diff(x[:, :, SELL], axis=1)
        depth = 0.5 * (x[:, :, BUY] + x[:, :, SELL]).mean(1)
        ofi = flow.sum(1) / depth
        risk: np.ndarray = 1.0 / (1.0 + np.exp(np.clip(4.0 * ofi, -50, 50)))
        return risk


def baselines(seed: int) -> list[Detector]:
    """The baseline detectors, in report order."""
    return [SeedRule(), BlrThreshold(), LogisticWindow(seed), OrderImbalance()]
