"""The reporting policy: risk mode proves what can move the breaker and screens the rest, saying why."""

from __future__ import annotations

import pytest

from sentinel.relay.policy import MIN_MARGIN, Decision, auto_margin, decide

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
