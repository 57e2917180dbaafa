"""The suppression check (pure): had every window been reported, would the breaker have tripped?

A relay may leave windows unreported (in ``risk`` mode it proves only those
that can matter). The breaker's streaks are runs of consecutive window ids,
so a window left out can only break a streak, never build one: leaving out
high windows can delay or prevent a trip. With the archived rows the auditor
scores every unreported window with the float model of the verifier active
when it ended, merges them with the reported windows (on-chain scores) in
window order, and counts streaks over that full sequence with the breaker's
own rule (:func:`sentinel.audit.replay.streaks` and ``trips``). Whether the
breaker is tripped, and every event that starts the streaks again (a trip
or recovery, by hand or by a report, new parameters, a new verifier), is
taken from the replay of the chain, so each run is judged against what the
chain did at that point and one finding does not cascade into the next.

A run of high windows that reaches ``tripAfter`` while the chain is not
tripped, and holds at least one unreported window, is a discrepancy: the
breaker would have tripped at that window and did not (or only later).
Unreported windows that never complete such a run, calm or just below the
threshold, are fine. Recovery needs no counterpart: the breaker's calm
streak is consecutive reported windows, so a window left out while tripped
can only delay a recovery, never bring it forward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sentinel.audit.findings import Finding, discrepancy
from sentinel.audit.replay import WAD, ZERO, ChainEvent, Snapshot, streaks, trips

CHECK = "suppression"


@dataclass(frozen=True)
class Unreported:
    """A window nobody reported, scored by the float model of the verifier active when it ended."""

    window_id: int
    window_end: int
    score: float


@dataclass(frozen=True)
class _Window:
    window_id: int
    window_end: int
    score: int  #: WAD: on chain for a reported window, the float model's for an unreported one
    reported: bool


@dataclass
class _Run:
    """Consecutive windows scoring >= the trip threshold in the full sequence."""

    threshold: int
    windows: list[_Window] = field(default_factory=list)
    would_trip: _Window | None = None  #: where the full sequence trips the breaker while the chain is not tripped
    chain_trip: int | None = None  #: the window the chain tripped at, later in the same run


@dataclass
class SuppressionResult:
    """Findings (one per hiding run) and the unreported windows they name."""

    findings: list[Finding] = field(default_factory=list)
    flagged: set[int] = field(default_factory=set)


def _resets(e: ChainEvent) -> bool:
    """Events that start both streaks again on chain (an automatic trip or recovery belongs to its Report)."""
    if e.name == "Tripped":
        return bool(e.args["byGuardian"])
    if e.name == "Recovered":
        return bool(e.args["byGovernance"])
    return e.name in ("ParamsChanged", "VerifierChanged")


class _Sweep:
    """Walks the full sequence: streaks over every window, trips and recoveries as the chain had them."""

    def __init__(self, start: Snapshot, listed: int) -> None:
        self.chain = start  # the replayed chain before the next event
        self.full = start.state  # last window and streaks of the full sequence (its tripped fields are unused)
        self.run: _Run | None = None
        self.listed = listed
        self.out = SuppressionResult()

    @property
    def configured(self) -> bool:
        return self.chain.verifier != ZERO and self.chain.params.trip_after > 0

    def window(self, w: _Window, after: Snapshot | None = None) -> None:
        """Count window ``w``; ``after`` is the chain's snapshot after it when it was reported."""
        before, p = self.chain.state, self.chain.params
        high, low = streaks(self.full, p, self.chain.cadence, w.window_id, w.score)
        if high <= 1:
            self.close()
        if high:
            self.run = self.run or _Run(p.trip_threshold)
            self.run.windows.append(w)
        now = (after or self.chain).state
        chain_tripped_here = now.tripped and not before.tripped
        if self.run is not None:
            if trips(before, p, high) and self.run.would_trip is None and not now.tripped:
                self.run.would_trip = w
            elif chain_tripped_here and self.run.would_trip is not None and self.run.chain_trip is None:
                self.run.chain_trip = w.window_id
        self.full = replace(self.full, last_window_id=w.window_id, last_window_end=w.window_end,
                            high_streak=high, low_streak=low)
        if chain_tripped_here:
            self.full = replace(self.full, low_streak=0)
        elif before.tripped and not now.tripped:  # recovered by this report
            self.full = replace(self.full, high_streak=0, low_streak=0)
            self.close()
        if after is not None:
            self.chain = after

    def event(self, e: ChainEvent, after: Snapshot) -> None:
        if e.name == "Report":
            a = e.args
            self.window(_Window(int(a["windowId"]), int(a["windowEnd"]), int(a["score"]), reported=True), after)
            return
        if _resets(e):
            self.full = replace(self.full, high_streak=0, low_streak=0)
            self.close()
        self.chain = after

    def close(self) -> None:
        run, self.run = self.run, None
        if run is None or run.would_trip is None:
            return
        hidden = [w for w in run.windows if not w.reported]
        if not hidden:  # the chain saw every window of the run: the replay judges it
            return
        self.out.flagged.update(w.window_id for w in hidden)
        names = ", ".join(f"{w.window_id} ({w.score / WAD:.3f})" for w in hidden[: self.listed])
        if len(hidden) > self.listed:
            names += f" and {len(hidden) - self.listed} more"
        at = run.would_trip.window_id
        chain = (f"the chain tripped only at window {run.chain_trip}, {run.chain_trip - at} window(s) later"
                 if run.chain_trip is not None else "the chain did not trip in this run")
        self.out.findings.append(discrepancy(
            CHECK, f"{len(hidden)} unreported window(s) scoring >= the trip threshold {run.threshold / WAD:g} "
                   f"(float model on the archived rows): {names}; reported with the rest of their run of "
                   f"{len(run.windows)} consecutive high window(s), they trip the breaker at window {at}; {chain}",
            window_id=at))


def check_suppression(start: Snapshot, history: Sequence[tuple[ChainEvent, Snapshot]],
                      unreported: Sequence[Unreported], listed: int = 10) -> SuppressionResult:
    """Runs of high windows that would have tripped the breaker had the ``unreported`` windows been reported.

    ``start`` and ``history`` are the replay's (:attr:`ReplayResult.history`); ``unreported`` are the windows
    to add, each placed in window order among the reports and, among other events (manual trips, governance
    recoveries, new parameters or verifiers), by its end time. ``listed`` caps the windows a finding names.
    """
    pending = sorted(unreported, key=lambda u: u.window_end)
    next_report = [math.inf] * len(history)  # end of the next reported window, at or after each event
    upcoming = math.inf
    for i in range(len(history) - 1, -1, -1):
        e = history[i][0]
        if e.name == "Report":
            upcoming = int(e.args["windowEnd"])
        next_report[i] = upcoming
    sweep = _Sweep(start, listed)
    k = 0

    def add(u: Unreported) -> None:
        sweep.window(_Window(u.window_id, u.window_end, round(u.score * WAD), reported=False))

    for i, (e, after) in enumerate(history):
        while (k < len(pending) and sweep.configured and pending[k].window_end < next_report[i]
               and (e.name == "Report" or pending[k].window_end <= e.timestamp)):
            add(pending[k])
            k += 1
        sweep.event(e, after)
    if sweep.configured:
        for u in pending[k:]:
            add(u)
    sweep.close()
    return sweep.out
