"""Forecast labels, episode split (no leakage) and the trip-policy simulation."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.data import schema
from sentinel.data.synthetic import generate
from sentinel.data.windows import cut_windows, resolve_window, valid_end_rows
from sentinel.errors import DataError, ModelError
from sentinel.model.dataset import episode_traces, labeled_windows, split_episodes
from sentinel.model.labels import crash_events, row_labels
from sentinel.model.policy import EpisodeTrace, TripPolicy, evaluate_policy, trip_steps, tune_policy


@pytest.fixture(scope="module")
def market():
    return generate(60, seed=21)


def test_labels_mark_horizon_before_onset_and_the_crash(market):
    horizon = 30
    labels = row_labels(market, horizon)
    frame = market.frame
    phase = frame[schema.PHASE].to_numpy()
    for event in crash_events(market):
        assert labels[event.onset - horizon : event.bottom + 1].all()
        assert labels[event.onset - horizon - 1] == 0  # healthy prefix is >= 120 rows
        assert labels[event.bottom + 1 : event.end + 1].sum() == 0  # recovery is negative
        assert (phase[event.onset : event.bottom + 1] == schema.CRASH).all()
    negatives = frame[schema.FAMILY].isin(schema.HARD_NEGATIVE_FAMILIES).to_numpy()
    assert labels[negatives].sum() == 0


def test_labels_never_look_at_blr(market):
    """Same truth columns, scrambled BLR: identical labels."""
    frame = market.frame.copy()
    frame[schema.BLR] = np.random.default_rng(0).permutation(frame[schema.BLR].to_numpy())
    from sentinel.data.validate import MarketData

    scrambled = MarketData(frame, market.cadence_seconds)
    assert np.array_equal(row_labels(scrambled, 30), row_labels(market, 30))


def test_labels_need_ground_truth(market):
    from sentinel.data.validate import MarketData

    bare = MarketData(market.frame[list(schema.REQUIRED_COLUMNS)], 60.0)
    with pytest.raises(ModelError, match="need ground-truth columns"):
        row_labels(bare, 30)


def test_split_is_by_episode_without_leakage(market):
    split = split_episodes(market, seed=3, holdout_family="bleed")
    parts = [set(split.train), set(split.val), set(split.test), set(split.holdout)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not parts[i] & parts[j]
    assert set().union(*parts) == set(market.frame[schema.EPISODE].unique())
    family_of = market.frame.drop_duplicates(schema.EPISODE).set_index(schema.EPISODE)[schema.FAMILY]
    assert all(family_of[e] == "bleed" for e in split.holdout)
    assert not any(family_of[e] == "bleed" for e in split.train + split.val + split.test)
    # no window of one part contains a row of another part's episode
    for eps in (split.train, split.val, split.test):
        w = labeled_windows(market, eps, 50, 30)
        rows = w.end_rows[:, None] - np.arange(50)[None, :]
        assert set(np.unique(market.frame[schema.EPISODE].to_numpy()[rows])) <= set(eps)


def test_split_is_deterministic_and_seeded(market):
    assert split_episodes(market, 3, "bleed") == split_episodes(market, 3, "bleed")
    assert split_episodes(market, 3, "bleed").train != split_episodes(market, 4, "bleed").train


def test_training_windows_never_straddle_episodes(market):
    ends = valid_end_rows(market, 50)
    episode = market.frame[schema.EPISODE].to_numpy()
    assert (episode[ends] == episode[ends - 49]).all()
    w = cut_windows(market, 50, ends[:3])
    assert w.x.shape == (3, 50, 4)
    np.testing.assert_array_equal(w.x[0], market.features()[ends[0] - 49 : ends[0] + 1].astype(np.float32))


def test_resolve_window(market):
    n = len(market)
    assert resolve_window(market, "latest", 50) == n - 1
    assert resolve_window(market, "50", 50) == 49
    ts = market.frame[schema.TIMESTAMP].iat[99].isoformat()
    assert resolve_window(market, ts, 50) == 99
    with pytest.raises(DataError, match="a window needs 50"):
        resolve_window(market, "10", 50)
    with pytest.raises(DataError, match="no row has that timestamp"):
        resolve_window(market, "1999-01-01T00:00:00Z", 50)
    with pytest.raises(DataError, match=f"rows 1..{n}"):
        resolve_window(market, str(n + 1), 50)
    with pytest.raises(DataError, match="expected 'latest'"):
        resolve_window(market, "soon", 50)


def test_trip_policy_needs_n_consecutive_and_hysteresis():
    policy = TripPolicy(trip_threshold=0.8, reset_threshold=0.3, trip_after=3, reset_after=2)
    scores = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.5, 0.5, 0.2, 0.4, 0.2, 0.2, 0.9, 0.9, 0.9])
    # trips at step 5 (third consecutive), stays tripped through 0.5s (above reset),
    # one 0.2 then 0.4 resets the count; recovers at step 11; trips again at 14
    assert trip_steps(scores, policy).tolist() == [5, 14]
    with pytest.raises(ModelError):
        TripPolicy(0.3, 0.8)


def _trace(scores, onset=None, bottom=None, end=None, healthy=None):
    rows = np.arange(len(scores)) + 1000
    prices = np.linspace(100, 85, len(scores))
    return EpisodeTrace(
        rows=rows, scores=np.asarray(scores, float),
        healthy_rows=len(scores) if healthy is None else healthy, family="drain",
        onset=None if onset is None else 1000 + onset, bottom=None if bottom is None else 1000 + bottom,
        end=None if end is None else 1000 + end, price_before=100.0, prices=prices,
    )


def test_event_metrics_detection_lead_false_and_late():
    policy = TripPolicy(0.5, 0.2, trip_after=1, reset_after=1)
    scores = np.zeros(100)
    scores[60] = 1.0  # onset 70, horizon 20: a detection 40 rows before the bottom (100 -> 99)
    scores[62] = 0.0
    detected = _trace(scores, onset=70, bottom=99, end=99, healthy=70)
    false_only = _trace(np.r_[np.zeros(50), 1.0, np.zeros(49)], healthy=10_000)
    report = evaluate_policy([detected, false_only], policy, horizon=20)
    assert (report.events, report.detected, report.event_recall) == (1, 1, 1.0)
    assert report.median_lead_rows == 39
    assert report.median_rows_after_onset == -10
    assert report.false_trips == 1
    assert report.false_trips_per_10k == pytest.approx(1e4 / 10_070)
    early = _trace(np.r_[1.0, np.zeros(99)], onset=70, bottom=99, end=99)
    assert evaluate_policy([early], policy, 20).false_trips == 1  # long before the horizon: false
    late = np.zeros(100)
    late[80] = 1.0
    r = evaluate_policy([_trace(late, onset=70, bottom=75, end=99)], policy, 20)
    assert (r.detected, r.late_trips, r.false_trips) == (0, 1, 0)


def test_tune_policy_respects_the_false_trip_budget():
    rng = np.random.default_rng(0)
    traces = []
    for k in range(20):
        s = rng.uniform(0, 0.6, 300)
        s[200:260] = np.linspace(0.5, 0.99, 60)  # crash signal after onset 200
        if k % 4 == 0:
            s[50:53] = 0.95  # a short spike in a healthy stretch
        traces.append(_trace(s, onset=210, bottom=270, end=299, healthy=200))
    policy, report = tune_policy(traces, horizon=30, budget_per_10k=1.0, trip_after=3, reset_after=5,
                                 reset_ratio=0.5)
    assert report.false_trips_per_10k <= 1.0
    assert policy.trip_threshold > 0.95
    assert report.event_recall == 1.0
    loose, loose_report = tune_policy(traces, 30, budget_per_10k=1e9, trip_after=3, reset_after=5, reset_ratio=0.5)
    assert loose.trip_threshold <= policy.trip_threshold
    assert loose_report.median_lead_rows is not None and report.median_lead_rows is not None
    assert loose_report.median_lead_rows >= report.median_lead_rows


def test_episode_traces_attach_crashes(market):
    split = split_episodes(market, 3, None)
    w = labeled_windows(market, split.test, 50, 30)
    traces = episode_traces(market, w, np.zeros(len(w)))
    events = {e.episode: e for e in crash_events(market)}
    assert len(traces) == len(split.test)
    for tr in traces:
        assert np.all(np.diff(tr.rows) == 1)
        ep = int(market.frame[schema.EPISODE].iat[int(tr.rows[0])])
        assert (tr.onset is not None) == (ep in events)
