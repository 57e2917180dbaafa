"""Synthetic scenarios: determinism, family shapes, realistic healthy noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinel.data import schema
from sentinel.data.io import market_csv_bytes, read_market_csv, write_market_csv
from sentinel.data.synthetic import MarketProfile, generate
from sentinel.errors import DataError


def episodes_of(frame: pd.DataFrame):
    return [ep for _, ep in frame.groupby(schema.EPISODE, sort=True)]


def onset_and_bottom(ep: pd.DataFrame) -> tuple[int, int]:
    crash = np.flatnonzero(ep[schema.PHASE].to_numpy() == schema.CRASH)
    return int(crash[0]), int(crash[-1])


def test_same_seed_same_bytes_different_seed_different_bytes():
    a = market_csv_bytes(generate(12, seed=7))
    b = market_csv_bytes(generate(12, seed=7))
    c = market_csv_bytes(generate(12, seed=8))
    assert a == b
    assert a != c


def test_generated_file_passes_strict_validation(tmp_path):
    data = generate(15, seed=1)
    path = tmp_path / "s.csv"
    write_market_csv(data, path)
    back = read_market_csv(path)
    assert len(back) == len(data)
    assert back.has_truth
    assert back.cadence_seconds == 60
    np.testing.assert_allclose(back.features(), data.features(), rtol=0, atol=0)
    assert (back.frame[schema.PHASE] == data.frame[schema.PHASE]).all()


def test_drain_reaches_seed_levels():
    """The seed scenario: BLR from 1.0-1.5 down to ~0.35, sell pressure up, price -15 %."""
    frame = generate(30, seed=3, families=[schema.DRAIN]).frame
    bottoms, drops, healthy, sell_up, buy_down = [], [], [], [], []
    for ep in episodes_of(frame):
        onset, bottom = onset_and_bottom(ep)
        blr = ep[schema.BLR].to_numpy()
        price = ep[schema.MID_PRICE].to_numpy()
        sell = ep[schema.SELL_VOLUME].to_numpy()
        buy = ep[schema.BUY_VOLUME].to_numpy()
        before = slice(onset - 65, onset - 45)  # healthy: drain stress lasts <= 40 rows
        at_bottom = slice(bottom - 4, bottom + 1)
        healthy.append(np.median(blr[: onset - 40]))
        bottoms.append(blr[at_bottom].mean())
        drops.append(price[bottom] / price[onset - 1] - 1)
        sell_up.append(sell[at_bottom].mean() / sell[before].mean())
        buy_down.append(buy[at_bottom].mean() / buy[before].mean())
    assert 1.0 <= np.median(healthy) <= 1.5
    assert 0.30 <= np.median(bottoms) <= 0.40
    assert all(0.2 <= b <= 0.5 for b in bottoms)
    assert -0.18 <= np.median(drops) <= -0.12
    assert all(-0.25 <= d <= -0.07 for d in drops)
    # sell pressure rises while the buy side drains (depth noise blurs single episodes)
    assert np.median(sell_up) > 1.2 and np.mean(np.array(sell_up) > 1.0) >= 0.9
    assert np.median(buy_down) < 0.6 and np.mean(np.array(buy_down) < 0.8) >= 0.9


def test_flash_crash_is_fast_and_deep():
    for ep in episodes_of(generate(20, seed=4, families=[schema.FLASH]).frame):
        onset, bottom = onset_and_bottom(ep)
        price = ep[schema.MID_PRICE].to_numpy()
        assert bottom - onset + 1 <= 8
        assert price[bottom] / price[onset - 1] - 1 < -0.06


def test_slow_bleed_is_long_and_gradual():
    for ep in episodes_of(generate(10, seed=5, families=[schema.BLEED]).frame):
        onset, bottom = onset_and_bottom(ep)
        price = ep[schema.MID_PRICE].to_numpy()
        assert bottom - onset + 1 >= 150
        assert price[bottom] / price[onset - 1] - 1 < -0.05
        # gradual: no single row moves more than 2 %
        assert np.max(np.abs(np.diff(np.log(price[onset:bottom])))) < 0.02


@pytest.mark.parametrize("family", [schema.DIP, schema.SPIKE])
def test_hard_negatives_never_crash(family):
    frame = generate(20, seed=6, families=[family]).frame
    assert (frame[schema.CRASH_ONSET] == 0).all()
    assert not frame[schema.PHASE].isin([schema.CRASH, schema.STRESS, schema.RECOVERY]).any()
    for ep in episodes_of(frame):
        event = ep[schema.PHASE].to_numpy() == family
        assert event.any()
        price = ep[schema.MID_PRICE].to_numpy()
        first, last = np.flatnonzero(event)[[0, -1]]
        assert abs(price[min(last + 30, len(price) - 1)] / price[first - 1] - 1) < 0.06


def test_dips_are_hard_negatives_for_the_seed_rule():
    """Some dips go below the seed's BLR < 0.4 alert although nothing crashes."""
    frame = generate(40, seed=9, families=[schema.DIP]).frame
    assert frame[schema.ALERT_TRIGGERED].any()


def test_spikes_raise_depth_on_both_sides():
    for ep in episodes_of(generate(10, seed=10, families=[schema.SPIKE]).frame):
        event = ep[schema.PHASE].to_numpy() == schema.SPIKE
        depth = np.sqrt(ep[schema.BUY_VOLUME] * ep[schema.SELL_VOLUME]).to_numpy()
        healthy = ep[schema.PHASE].to_numpy() == schema.HEALTHY
        assert depth[event].max() > 1.5 * np.median(depth[healthy])


def test_healthy_regime_has_clustered_volatility_and_persistent_blr():
    frame = generate(30, seed=11, families=[schema.SPIKE]).frame
    healthy = (frame[schema.PHASE] == schema.HEALTHY).to_numpy()
    r = np.diff(np.log(frame[schema.MID_PRICE].to_numpy()))[healthy[1:] & healthy[:-1]]
    a = np.abs(r) - np.mean(np.abs(r))
    acf_abs = np.sum(a[1:] * a[:-1]) / np.sum(a * a)
    acf_r = np.corrcoef(r[1:], r[:-1])[0, 1]
    log_blr = np.log(frame[schema.BLR].to_numpy()[healthy])
    assert acf_abs > 0.05  # volatility clusters (i.i.d. returns give ~0)
    assert abs(acf_r) < 0.1  # but returns themselves are not predictable
    assert np.corrcoef(log_blr[1:], log_blr[:-1])[0, 1] > 0.8  # BLR is persistent, not i.i.d.
    kurtosis = np.mean((r - r.mean()) ** 4) / np.var(r) ** 2
    assert kurtosis > 3.5  # fat tails


def test_ground_truth_columns_are_consistent():
    frame = generate(25, seed=12).frame
    assert set(frame[schema.FAMILY]) <= set(schema.FAMILIES)
    for ep in episodes_of(frame):
        family = ep[schema.FAMILY].iloc[0]
        onsets = np.flatnonzero(ep[schema.CRASH_ONSET].to_numpy())
        if family in schema.CRASH_FAMILIES:
            onset, _ = onset_and_bottom(ep)
            assert list(onsets) == [onset]
            assert onset >= 120  # room for a full 50-row window of healthy data before
        else:
            assert onsets.size == 0
    ts = frame[schema.TIMESTAMP]
    assert (ts.diff().dropna() == pd.Timedelta(seconds=60)).all()  # one continuous feed
    assert (frame[schema.ALERT_TRIGGERED] == (frame[schema.BLR] < 0.4)).all()


def test_families_filter_and_unknown_family():
    frame = generate(8, seed=1, families=["bleed", "dip"]).frame
    assert set(frame[schema.FAMILY]) <= {"bleed", "dip"}
    with pytest.raises(DataError, match="unknown scenario family 'meteor'"):
        generate(3, seed=1, families=["meteor"])


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"episodes": 0, "seed": 1}, "--episodes must be >= 1"),
    ({"episodes": 2, "seed": -1}, "--seed must be >= 0"),
    ({"episodes": 2, "seed": 1, "start": "not a time"}, "not an ISO-8601 timestamp"),
    ({"episodes": 2, "seed": 1, "profile": MarketProfile(price=-1)}, "price must be a positive number"),
])
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        generate(**kwargs)


def test_feed_has_no_jumps_outside_flash_crashes():
    """Episodes join without a price jump, and no phase change teleports the price."""
    frame = generate(60, seed=13).frame
    step = np.abs(np.diff(np.log(frame[schema.MID_PRICE].to_numpy())))
    phase = frame[schema.PHASE].to_numpy()
    family = frame[schema.FAMILY].to_numpy()
    in_flash = (family[1:] == schema.FLASH) & np.isin(phase[1:], [schema.CRASH, schema.RECOVERY])
    assert step[~in_flash].max() < 0.03
