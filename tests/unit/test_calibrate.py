"""``--like``: generated healthy statistics match a real market's within stated tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.data import schema
from sentinel.data.calibrate import TOLERANCES, compare, healthy_stats, profile_from_stats
from sentinel.data.io import read_market_csv
from sentinel.data.synthetic import MarketProfile, generate
from sentinel.errors import DataError
from tests.support.feeds import btc_like_rows, write_rows


@pytest.fixture
def btc_like(tmp_path):
    """A market far from the seed: price ~64k, depth ~3 units, healthy BLR ~0.7."""
    path = tmp_path / "real.csv"
    write_rows(path, btc_like_rows(rows=3000, seed=5))
    return read_market_csv(path)


def test_like_reproduces_real_healthy_statistics(btc_like):
    real = healthy_stats(btc_like)
    assert real.price > 50_000 and real.depth < 5 and real.blr < 1.0  # far from the seed's ranges
    generated = generate(40, seed=2, profile=profile_from_stats(real))
    report = compare(real, healthy_stats(generated))
    failing = {k: v for k, v in report.items() if not v["ok"]}
    assert not failing, failing
    assert set(report) == set(TOLERANCES)


def test_like_injects_crashes_relative_to_the_real_market(btc_like):
    real = healthy_stats(btc_like)
    frame = generate(20, seed=4, families=[schema.DRAIN], profile=profile_from_stats(real)).frame
    for _, ep in frame.groupby(schema.EPISODE):
        crash = np.flatnonzero(ep[schema.PHASE].to_numpy() == schema.CRASH)
        blr = ep[schema.BLR].to_numpy()
        price = ep[schema.MID_PRICE].to_numpy()
        # BLR falls to roughly 0.29 x the market's own healthy median, not to the seed's 0.35
        assert blr[crash[-5:]].mean() / real.blr < 0.6
        assert price[crash[-1]] / price[crash[0] - 1] - 1 < -0.05
    assert frame[schema.BLR].min() < 0.3  # 0.7 x 0.29 ~ 0.2, below the seed's absolute level


def test_default_profile_round_trips_through_stats():
    stats = healthy_stats(generate(40, seed=8))
    default = MarketProfile()
    assert abs(stats.blr / default.blr - 1) < TOLERANCES["blr"]
    assert abs(stats.price / default.price - 1) < TOLERANCES["price"]
    assert abs(stats.return_vol / default.return_vol - 1) < TOLERANCES["return_vol"]


def test_too_few_rows(tmp_path):
    path = tmp_path / "short.csv"
    write_rows(path, btc_like_rows(rows=10, seed=1))
    with pytest.raises(DataError, match="need at least 30"):
        healthy_stats(read_market_csv(path))


def test_flat_price_cannot_be_calibrated(tmp_path):
    rows = btc_like_rows(rows=100, seed=1)
    for row in rows[1:]:
        row[4] = "100.00"
    path = tmp_path / "flat.csv"
    write_rows(path, rows)
    with pytest.raises(DataError, match="mid_price never changes"):
        profile_from_stats(healthy_stats(read_market_csv(path)))
