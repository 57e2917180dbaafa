"""Loss weighting of training windows: early in a crash, and around hard negatives (pure, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.config import load_config
from sentinel.data import schema
from sentinel.data.synthetic import RANGES, generate
from sentinel.errors import ConfigError
from sentinel.model.dataset import labeled_windows
from sentinel.model.labels import crash_events
from sentinel.model.train import loss_weights


@pytest.fixture(scope="module")
def data_and_windows():
    data = generate(24, seed=3, scenarios=RANGES)
    return data, labeled_windows(data, tuple(range(24)), 50, 30)


def test_off_is_all_ones(data_and_windows):
    data, windows = data_and_windows
    assert (loss_weights(data, windows, 50, 0.0, 0.0) == 1.0).all()


def test_early_windows_weigh_more_from_onset_through_half_the_fall(data_and_windows):
    data, windows = data_and_windows
    weights = loss_weights(data, windows, 50, 2.0, 0.0)
    early = np.zeros(len(windows), dtype=bool)
    for event in crash_events(data):
        last = event.onset + max(3, (event.bottom - event.onset) // 2)
        early |= (windows.episode == event.episode) & (windows.end_rows >= event.onset) & (windows.end_rows <= last)
    assert early.sum() > 20
    assert (weights[early] == 3.0).all() and (weights[~early] == 1.0).all()
    assert (windows.y[early] == 1).all()  # all of them positive windows


def test_windows_holding_a_hard_negative_weigh_more(data_and_windows):
    data, windows = data_and_windows
    weights = loss_weights(data, windows, 50, 0.0, 3.0)
    phase = data.frame[schema.PHASE].to_numpy()
    holds = np.array([np.isin(phase[end - 49:end + 1], schema.HARD_NEGATIVE_FAMILIES).any()
                      for end in windows.end_rows])
    assert holds.sum() > 50
    np.testing.assert_array_equal(weights, np.where(holds, 4.0, 1.0))
    assert (windows.y[holds] == 0).all()  # hard negatives are healthy


@pytest.mark.parametrize("key", ["early_weight", "negative_weight"])
def test_negative_weights_are_refused(tmp_path, monkeypatch, key):
    monkeypatch.setenv(f"SENTINEL_MODEL__{key.upper()}", "-1")
    with pytest.raises(ConfigError, match="must be >= 0"):
        load_config(tmp_path)


def test_unknown_scenario_space_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_MODEL__SCENARIOS", "fancy")
    with pytest.raises(ConfigError, match=r"model\.scenarios must be 'classic' or 'ranges'"):
        load_config(tmp_path)
