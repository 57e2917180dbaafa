"""The burst bench's pure parts: the breaker's rule on proven scores (a missing proof breaks a streak) and
percentiles."""

from __future__ import annotations

from sentinel.relay.burst import percentile, trip_tick


def test_the_breaker_trips_on_the_third_high_window_in_a_row():
    scores = {0: 0.1, 1: 0.8, 2: 0.9, 3: 0.75, 4: 0.95}
    assert trip_tick(scores, 5, 0.7, 3) == 3


def test_a_window_with_no_proof_breaks_the_streak_as_a_gap_does_on_chain():
    scores = {1: 0.8, 2: 0.9, 4: 0.95, 5: 0.9, 6: 0.9}  # tick 3 was dropped stale
    assert trip_tick(scores, 7, 0.7, 3) == 6
    assert trip_tick({1: 0.8, 2: 0.9, 4: 0.9}, 5, 0.7, 3) is None


def test_percentiles_by_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0 and percentile(values, 0.95) == 95.0
    assert percentile([], 0.5) is None and percentile([3.0], 0.95) == 3.0
