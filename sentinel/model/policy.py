"""The trip policy, simulated exactly as the breaker contract applies it (pure).

Trip after ``trip_after`` consecutive scores >= ``trip_threshold``; once
tripped, recover after ``reset_after`` consecutive scores <= ``reset_threshold``
(hysteresis: ``reset_threshold`` < ``trip_threshold``). Evaluation runs the
policy over every window of an episode, in time order, and scores the trips
against the episode's crash:

* a trip between ``onset - horizon`` and the price bottom is a *detection*;
  its lead is ``bottom - trip_row`` rows and its drawdown is the price change
  from just before onset to the trip row (what holders already lost);
* a trip later in the same crash or its recovery is *late* (neither a
  detection nor a false trip);
* any other trip is a *false trip*, counted per 10,000 healthy rows (rows in
  the ``healthy``, ``dip`` and ``spike`` phases: hard negatives included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sentinel.errors import ModelError


@dataclass(frozen=True)
class TripPolicy:
    """Thresholds and counts of the breaker's state machine."""

    trip_threshold: float
    reset_threshold: float
    trip_after: int = 3
    reset_after: int = 10

    def __post_init__(self) -> None:
        if self.trip_after < 1 or self.reset_after < 1:
            raise ModelError("trip_after and reset_after must be >= 1")
        if self.reset_threshold > self.trip_threshold:
            raise ModelError(
                f"reset threshold {self.reset_threshold} must not exceed trip threshold {self.trip_threshold}"
            )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def trip_steps(scores: np.ndarray, policy: TripPolicy) -> np.ndarray:
    """Indices of the steps at which the breaker trips (state goes untripped -> tripped)."""
    trips: list[int] = []
    tripped = False
    run = 0
    trip_t, reset_t = policy.trip_threshold, policy.reset_threshold
    for i, s in enumerate(scores.tolist()):
        if not tripped:
            run = run + 1 if s >= trip_t else 0
            if run >= policy.trip_after:
                tripped, run = True, 0
                trips.append(i)
        else:
            run = run + 1 if s <= reset_t else 0
            if run >= policy.reset_after:
                tripped, run = False, 0
    return np.asarray(trips, dtype=np.int64)


@dataclass(frozen=True)
class EpisodeTrace:
    """One episode's scored windows and its truth (rows are 0-based table rows)."""

    rows: np.ndarray  #: window end rows, increasing, contiguous
    scores: np.ndarray  #: one score per row
    healthy_rows: int  #: scored rows in healthy/dip/spike phases
    family: str
    onset: int | None = None  #: crash onset row, if the episode has a crash
    bottom: int | None = None  #: set exactly when ``onset`` is
    end: int | None = None  #: set exactly when ``onset`` is
    price_before: float | None = None  #: mid price on the row before onset
    prices: np.ndarray | None = None  #: mid price at each scored row


@dataclass(frozen=True)
class EventReport:
    """Event-level outcome of a policy over a set of episodes."""

    events: int
    detected: int
    event_recall: float
    median_lead_rows: float | None  #: rows from trip to price bottom (detections)
    median_rows_after_onset: float | None  #: trip row - onset (negative: before onset)
    median_drawdown_at_trip: float | None  #: price change since onset at the trip
    false_trips: int
    healthy_rows: int
    false_trips_per_10k: float
    late_trips: int
    leads: tuple[int, ...]
    #: family -> (detected, events)
    by_family: tuple[tuple[str, int, int], ...] = ()
    #: price change since onset at each detection's trip (detections with prices)
    drawdowns: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["leads"] = list(self.leads)
        out["drawdowns"] = list(self.drawdowns)
        out["by_family"] = {f: {"detected": d, "events": n} for f, d, n in self.by_family}
        return out


def evaluate_policy(traces: Sequence[EpisodeTrace], policy: TripPolicy, horizon: int) -> EventReport:
    """Run ``policy`` over every episode and score its trips (see module doc)."""
    events = detected = false_trips = late = healthy = 0
    leads: list[int] = []
    after_onset: list[int] = []
    drawdowns: list[float] = []
    families: dict[str, list[int]] = {}
    for tr in traces:
        healthy += tr.healthy_rows
        trips = tr.rows[trip_steps(tr.scores, policy)] if len(tr.scores) else np.zeros(0, np.int64)
        if tr.onset is None:
            false_trips += len(trips)
            continue
        if tr.bottom is None or tr.end is None:
            raise ModelError(f"{tr.family} episode trace: a crash onset needs its bottom and end rows")
        events += 1
        tally = families.setdefault(tr.family, [0, 0])
        tally[1] += 1
        window_start = tr.onset - horizon
        hit = None
        for row in trips:
            if window_start <= row <= tr.bottom and hit is None:
                hit = int(row)
            elif tr.onset <= row <= tr.end:
                late += 1
            else:
                false_trips += 1
        if hit is not None:
            detected += 1
            tally[0] += 1
            leads.append(tr.bottom - hit)
            after_onset.append(hit - tr.onset)
            if tr.prices is not None and tr.price_before:
                price = float(tr.prices[np.searchsorted(tr.rows, hit)])
                drawdowns.append(price / tr.price_before - 1.0)

    def med(values: list[float] | list[int]) -> float | None:
        return float(np.median(values)) if values else None

    return EventReport(
        events=events,
        detected=detected,
        event_recall=detected / events if events else float("nan"),
        median_lead_rows=med(leads),
        median_rows_after_onset=med(after_onset),
        median_drawdown_at_trip=med(drawdowns),
        false_trips=false_trips,
        healthy_rows=healthy,
        false_trips_per_10k=1e4 * false_trips / healthy if healthy else float("nan"),
        late_trips=late,
        leads=tuple(leads),
        by_family=tuple((f, d, n) for f, (d, n) in sorted(families.items())),
        drawdowns=tuple(drawdowns),
    )


def tune_policy(
    traces: Sequence[EpisodeTrace],
    horizon: int,
    budget_per_10k: float,
    trip_after: int,
    reset_after: int,
    reset_ratio: float,
    candidates: int = 120,
) -> tuple[TripPolicy, EventReport]:
    """Choose the trip threshold on validation episodes.

    Among thresholds whose false-trip rate is within ``budget_per_10k``, take
    the one with the highest event recall, then the longest median lead. The
    reset threshold is ``reset_ratio`` x the trip threshold. If no threshold
    meets the budget, the strictest candidate is returned (its report says so).
    """
    scores = np.concatenate([t.scores for t in traces]) if traces else np.zeros(0)
    if scores.size == 0:
        raise ModelError("no validation windows to tune thresholds on")
    qs = np.unique(np.quantile(scores, np.linspace(0.5, 1.0, candidates)))
    best: tuple[tuple[float, float, float], TripPolicy, EventReport] | None = None
    strictest: tuple[TripPolicy, EventReport] | None = None
    for thr in qs:
        policy = TripPolicy(float(thr), float(thr) * reset_ratio, trip_after, reset_after)
        report = evaluate_policy(traces, policy, horizon)
        strictest = (policy, report)
        if report.false_trips_per_10k > budget_per_10k:
            continue
        key = (report.event_recall, report.median_lead_rows or -1e9, -thr)
        if best is None or key > best[0]:
            best = (key, policy, report)
    if best is not None:
        return best[1], best[2]
    if strictest is None:
        raise ModelError("no candidate thresholds")
    return strictest
