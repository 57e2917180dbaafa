"""``sentinel bench --markets N --burst`` through the real relay and chain, on the tiny circuit: two markets, a
few windows each, every one confirmed, and the bench's counts are the breakers' Report events."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.relay.burst_chain import bench_burst_chain

pytestmark = pytest.mark.integration

MARKETS, MINUTES = 2, 3


def test_two_markets_every_window_confirmed_once_on_its_own_breaker(tiny_circuit: Path):
    config = load_config(tiny_circuit, {"relay.executor": "local"}, env={})
    result = bench_burst_chain(ArtifactLayout(tiny_circuit), config, MARKETS, MINUTES, 3.0)

    assert result["settled"] is True
    assert result["states"] == {"confirmed": MARKETS * MINUTES}, result["states"]
    assert result["confirmed"] == result["reports_on_chain"] == MARKETS * MINUTES
    for market in result["per_market"]:
        # one Report per window, each window once, on this market's breaker
        assert market["reports_on_chain"] == market["reported_windows_on_chain"] == market["windows"]["confirmed"] \
            == MINUTES, market
    assert [m["market"] for m in result["per_market"]] == ["m0", "m1"]
    latency = result["latency_seen_to_confirmed_wall_seconds"]
    assert latency["n"] == MARKETS * MINUTES and 0 < latency["p50"] <= latency["p95"]
    assert result["stale"] == result["skipped"] == result["rejected"] == 0
    assert result["windows_confirmed_per_wall_minute"] > 0
