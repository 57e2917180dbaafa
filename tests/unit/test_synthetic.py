"""Synthetic scenarios: determinism, family shapes, realistic healthy noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinel.data import schema
from sentinel.data.io import market_csv_bytes, read_market_csv, write_market_csv
from sentinel.data.synthetic import (
    CLASSIC,
    CRASH_RANGES,
    RANGES,
    RANGES_MIX,
    TRAIN_REGION,
    UNSEEN_FAMILIES,
    UNSEEN_REGION,
    MarketProfile,
    draw_crash,
    generate,
)
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


# --- the ranges space: crash families as parameter ranges, more hard negatives, an unseen region -------------


def crash_rows_by_family(frame: pd.DataFrame) -> dict[str, list[int]]:
    """Each crash's duration (onset to price bottom, in rows), per family."""
    out: dict[str, list[int]] = {}
    for ep in episodes_of(frame):
        if ep[schema.FAMILY].iloc[0] in schema.CRASH_FAMILIES:
            onset, bottom = onset_and_bottom(ep)
            out.setdefault(ep[schema.FAMILY].iloc[0], []).append(bottom - onset + 1)
    return out


def rows_of(family: str, region: str) -> tuple[int, int]:
    """The durations ``region`` draws for ``family`` (which must have that region)."""
    rows = CRASH_RANGES[family].region_rows(region)
    assert rows is not None
    return rows


def test_ranges_space_is_deterministic_and_differs_from_classic():
    a = market_csv_bytes(generate(10, seed=7, scenarios=RANGES))
    assert a == market_csv_bytes(generate(10, seed=7, scenarios=RANGES))
    assert a != market_csv_bytes(generate(10, seed=8, scenarios=RANGES))
    assert a != market_csv_bytes(generate(10, seed=7))  # classic stays the default of the library call
    unseen = market_csv_bytes(generate(10, seed=7, scenarios=RANGES, region=UNSEEN_REGION))
    assert unseen == market_csv_bytes(generate(10, seed=7, scenarios=RANGES, region=UNSEEN_REGION))
    assert unseen != a


def test_the_generator_still_writes_the_committed_models_training_bytes():
    """models/model_card.json names the sha256 of its training file, which the generator must still write."""
    import hashlib
    import json
    from pathlib import Path

    card = json.loads((Path(__file__).resolve().parents[2] / "models" / "model_card.json").read_text())
    config = card["config"]
    scenarios = config.get("scenarios", CLASSIC)
    data = generate(config["data_episodes"], config["data_seed"], scenarios=scenarios,
                    vary_market=config.get("vary_market", False) and scenarios == RANGES)
    assert hashlib.sha256(market_csv_bytes(data)).hexdigest() == card["data"]["sha256"]


@pytest.mark.parametrize("family", list(CRASH_RANGES))
@pytest.mark.parametrize("region", [TRAIN_REGION, UNSEEN_REGION])
def test_drawn_crash_parameters_stay_in_their_ranges(family, region):
    ranges = CRASH_RANGES[family]
    rows = ranges.region_rows(region)
    if rows is None:
        with pytest.raises(DataError, match=f"family '{family}' has no unseen region"):
            draw_crash(family, np.random.default_rng(0), region)
        return
    rng = np.random.default_rng(1)
    drawn = [draw_crash(family, rng, region) for _ in range(400)]
    durations = [p.rows for p in drawn]
    assert rows[0] <= min(durations) and max(durations) <= rows[1]
    assert max(durations) - min(durations) >= 0.5 * (rows[1] - rows[0])  # the range is covered, not one value
    for name in ("blr_ratio", "drop", "sell_ratio", "curvature", "depth_lag", "price_lag", "vol_peak"):
        lo, hi = getattr(ranges, name)
        values = [getattr(p, name) for p in drawn]
        assert lo <= min(values) and max(values) <= hi, name
    stressed = np.mean([p.stress_rows > 0 for p in drawn])
    assert abs(stressed - ranges.stress_p) < 0.1
    assert all(ranges.stress_rows[0] <= p.stress_rows <= ranges.stress_rows[1] for p in drawn if p.stress_rows)


def test_durations_span_a_few_rows_to_several_hundred():
    lows = [r.rows[0] for r in CRASH_RANGES.values()]
    highs = [r.rows[1] for r in CRASH_RANGES.values()]
    assert min(lows) <= 3 and max(highs) >= 300
    # the unseen region is an end of its family's range: the slowest drains, the fastest flashes
    assert rows_of(schema.DRAIN, UNSEEN_REGION)[1] == CRASH_RANGES[schema.DRAIN].rows[1]
    assert rows_of(schema.FLASH, UNSEEN_REGION)[0] == CRASH_RANGES[schema.FLASH].rows[0]
    # ... and the training region is the rest of it
    assert rows_of(schema.DRAIN, TRAIN_REGION) == (20, 150) and rows_of(schema.FLASH, TRAIN_REGION) == (5, 20)
    assert set(UNSEEN_FAMILIES) == {schema.DRAIN, schema.FLASH}


def test_generated_crashes_have_the_drawn_durations():
    """The phase column's crash (onset to bottom) lasts what the family's region allows."""
    frame = generate(120, seed=21, scenarios=RANGES, families=list(schema.CRASH_FAMILIES)).frame
    for family, durations in crash_rows_by_family(frame).items():
        lo, hi = rows_of(family, TRAIN_REGION)
        assert lo <= min(durations) and max(durations) <= hi, family


def test_training_data_never_contains_the_unseen_region():
    frame = generate(600, seed=7, scenarios=RANGES).frame
    durations = crash_rows_by_family(frame)
    for family in UNSEEN_FAMILIES:
        u_lo, u_hi = rows_of(family, UNSEEN_REGION)
        assert len(durations[family]) > 50
        assert not any(u_lo <= d <= u_hi for d in durations[family]), family
    # ... and the unseen region's episodes lie only there
    unseen = crash_rows_by_family(generate(80, seed=7, scenarios=RANGES, region=UNSEEN_REGION).frame)
    assert set(unseen) == set(UNSEEN_FAMILIES)
    for family, values in unseen.items():
        u_lo, u_hi = rows_of(family, UNSEEN_REGION)
        assert all(u_lo <= d <= u_hi for d in values), family


def test_the_unseen_region_is_refused_where_it_does_not_exist():
    with pytest.raises(DataError, match="has no unseen region"):
        generate(3, seed=1, scenarios=RANGES, region=UNSEEN_REGION, families=[schema.BLEED])
    with pytest.raises(DataError, match="belongs to the 'ranges' scenario space"):
        generate(3, seed=1, region=UNSEEN_REGION)
    with pytest.raises(DataError, match="unknown scenario space 'fancy'"):
        generate(3, seed=1, scenarios="fancy")
    with pytest.raises(DataError, match="unknown region 'elsewhere'"):
        generate(3, seed=1, scenarios=RANGES, region="elsewhere")


def test_ranges_mix_draws_every_family():
    frame = generate(200, seed=3, scenarios=RANGES).frame
    assert set(frame[schema.FAMILY]) == set(RANGES_MIX) == set(schema.FAMILIES)


@pytest.mark.parametrize("family", [schema.DRIFT, schema.WITHDRAWAL, schema.MOVE, schema.DIP, schema.SPIKE])
def test_new_hard_negatives_are_labelled_healthy(family):
    from sentinel.model.labels import row_labels

    data = generate(15, seed=8, scenarios=RANGES, families=[family])
    frame = data.frame
    assert (frame[schema.CRASH_ONSET] == 0).all()
    assert set(frame[schema.PHASE]) == {schema.HEALTHY, family}
    assert set(frame[schema.PHASE]) <= set(schema.HEALTHY_PHASES)  # a trip on any row is a false trip
    assert not row_labels(data, horizon=30).any()  # no positive window


def test_new_hard_negatives_have_their_shapes():
    def event_and_healthy(ep: pd.DataFrame, family: str) -> tuple[np.ndarray, np.ndarray]:
        phase = ep[schema.PHASE].to_numpy()
        return phase == family, phase == schema.HEALTHY

    for ep in episodes_of(generate(12, seed=14, scenarios=RANGES, families=[schema.DRIFT]).frame):
        event, _ = event_and_healthy(ep, schema.DRIFT)
        assert event.sum() >= 100  # slow: hours
        blr = ep[schema.BLR].to_numpy()
        assert np.max(np.abs(np.diff(np.log(blr[event])))) < 0.2  # no jump, a drift
    for ep in episodes_of(generate(12, seed=15, scenarios=RANGES, families=[schema.WITHDRAWAL]).frame):
        event, healthy = event_and_healthy(ep, schema.WITHDRAWAL)
        depth = np.sqrt(ep[schema.BUY_VOLUME] * ep[schema.SELL_VOLUME]).to_numpy()
        first = np.flatnonzero(event)[0]
        assert depth[event].min() < 0.8 * np.median(depth[:first])  # depth withdrawn ...
        after = np.flatnonzero(healthy & (np.arange(len(ep)) > first))
        assert np.median(depth[after]) > 0.7 * np.median(depth[:first])  # ... and back
    moved = 0
    for ep in episodes_of(generate(12, seed=16, scenarios=RANGES, families=[schema.MOVE]).frame):
        event, _ = event_and_healthy(ep, schema.MOVE)
        price = ep[schema.MID_PRICE].to_numpy()
        blr = ep[schema.BLR].to_numpy()
        first, last = np.flatnonzero(event)[[0, -1]]
        moved += abs(price[last] / price[first - 1] - 1) > 0.02
        assert blr[event].min() > 0.4  # no liquidity loss: never under the seed's alert
    assert moved >= 9  # the price moves in most (the healthy noise blurs a few 3 % moves)


# --- varied healthy markets (ranges space, vary_market) --------------------------------------------------------


def test_varied_markets_keep_every_event_and_are_deterministic():
    """The markets come from their own stream: the same seed's episodes, phases and families, other levels."""
    plain = generate(40, seed=21, scenarios=RANGES).frame
    varied = generate(40, seed=21, scenarios=RANGES, vary_market=True).frame
    for column in (schema.EPISODE, schema.FAMILY, schema.PHASE, schema.CRASH_ONSET):
        assert (plain[column].to_numpy() == varied[column].to_numpy()).all(), column
    assert not np.allclose(plain[schema.BLR], varied[schema.BLR])
    again = generate(40, seed=21, scenarios=RANGES, vary_market=True)
    assert market_csv_bytes(again) == market_csv_bytes(generate(40, seed=21, scenarios=RANGES, vary_market=True))


def test_varied_markets_span_their_ranges_without_a_jump():
    from sentinel.data.synthetic import MARKET_RANGES

    frame = generate(300, seed=22, scenarios=RANGES, vary_market=True).frame
    profile = MarketProfile()
    healthy = frame[frame[schema.PHASE] == schema.HEALTHY]
    level = healthy.groupby(schema.EPISODE)[schema.BLR].median() / profile.blr
    lo, hi = MARKET_RANGES.blr
    assert level.min() < lo + 0.15 and level.max() > hi - 0.25  # the walk reaches both ends of its range
    assert level.min() > 0.8 * lo and level.max() < 1.25 * hi  # and stays inside (noise aside)
    noise = healthy.groupby(schema.EPISODE)[schema.BLR].apply(lambda b: np.log(b).diff().std())
    assert noise.max() > 2 * noise.min()  # the BLR's noise differs between markets
    log_blr = np.log(frame[schema.BLR].to_numpy())
    boundary = np.flatnonzero(np.diff(frame[schema.EPISODE].to_numpy()))  # the step from one episode to the next
    steps = np.abs(np.diff(log_blr))
    assert steps[boundary].max() < np.quantile(steps[frame[schema.PHASE].to_numpy()[1:] == schema.HEALTHY], 0.999)


def test_the_classic_space_has_no_varied_markets():
    with pytest.raises(DataError, match="varied healthy markets belong to the 'ranges'"):
        generate(5, seed=1, vary_market=True)
