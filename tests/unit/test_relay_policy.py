"""The reporting policy: risk mode proves what can move the breaker and screens the rest, saying why."""

from __future__ import annotations

import pytest

from sentinel.relay.policy import MIN_MARGIN, Decision, auto_margin, decide, plan_batch

TRIP = 0.7264


def risk(score: float, *, tripped: bool = False, manual: bool = False, high_streak: int = 0,
         last_reported: int = 100, heartbeat_windows: int = 0) -> Decision:
    return decide("risk", 101, score, trip_threshold=TRIP, margin=0.02, tripped=tripped, manual=manual,
                  high_streak=high_streak, last_reported=last_reported, heartbeat_windows=heartbeat_windows)


def test_every_mode_proves_everything():
    d = decide("every", 5, 0.0, trip_threshold=TRIP, margin=0.02, tripped=False, manual=False, high_streak=0,
               last_reported=4, heartbeat_windows=0)
    assert d.prove and d.why == "every"


def test_a_calm_window_is_screened_with_its_score_in_the_reason():
    d = risk(0.31)
    assert not d.prove and d.why == "calm"
    assert "float score 0.3100 < trip threshold 0.7264 - margin 0.0200" in d.reason


@pytest.mark.parametrize(("score", "prove"), [(TRIP, True), (TRIP - 0.02, True), (TRIP - 0.0201, False), (0.99, True)])
def test_the_margin_below_the_threshold_is_proved(score, prove):
    assert risk(score).prove is prove


def test_a_tripped_breaker_gets_every_window_for_its_recovery_but_not_a_manual_trip():
    assert risk(0.05, tripped=True).why == "tripped"
    held = risk(0.05, tripped=True, manual=True)
    assert not held.prove and "only governance recovers it" in held.reason


def test_a_streak_in_progress_gets_the_next_window_whatever_its_score():
    assert risk(0.05, high_streak=1).why == "streak"


def test_a_heartbeat_is_due_every_n_windows_since_the_last_report():
    assert not risk(0.1, heartbeat_windows=5, last_reported=97).prove  # 4 windows since
    beat = risk(0.1, heartbeat_windows=5, last_reported=96)
    assert beat.prove and beat.why == "heartbeat" and "heartbeat every 5" in beat.reason


def test_the_auto_margin_covers_the_circuits_gap_twice_and_has_a_floor():
    assert auto_margin(0.0026, 0.005) == MIN_MARGIN  # 2 x 0.005 is below the floor
    assert auto_margin(0.03, 0.005) == pytest.approx(0.06)
    assert auto_margin(0.0, 0.0) == MIN_MARGIN


def test_a_tripped_breaker_gets_k_consecutive_windows_in_one_proof():
    ends = {w: w * 60 for w in range(100, 106)}
    plan = plan_batch(100, ends, k=4, cadence=60, now=103 * 60 + 5)
    assert (plan.action, plan.windows) == ("batch", (100, 101, 102, 103))


def test_a_short_run_waits_for_its_batch_until_k_cadences_after_its_first_window():
    ends = {100: 6000, 101: 6060}
    held = plan_batch(100, ends, k=4, cadence=60, now=6000 + 4 * 60 - 1)
    assert (held.action, held.windows) == ("hold", (100, 101)) and "until chain time 6240" in held.reason
    late = plan_batch(100, ends, k=4, cadence=60, now=6240)
    assert (late.action, late.windows) == ("single", (100,))


def test_a_gap_in_the_feed_ends_the_run():
    ends = {100: 6000, 101: 6060, 103: 6180, 104: 6240}  # window 102 never came
    assert plan_batch(100, ends, k=4, cadence=60, now=6100).action == "hold"
    assert plan_batch(100, ends, k=4, cadence=60, now=6300).windows == (100,)


def test_a_batch_never_waits_past_the_last_moment_its_first_window_can_be_reported():
    """The review's R2: with a short max age the hold ends when the first window must be proved to stay fresh,
    not K cadences after it."""
    ends = {100: 6000, 101: 6060}
    held = plan_batch(100, ends, k=4, cadence=60, now=6100, latest=6150)
    assert held.action == "hold" and "until chain time 6150" in held.reason
    assert plan_batch(100, ends, k=4, cadence=60, now=6150, latest=6150).windows == (100,)
