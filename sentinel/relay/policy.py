"""The reporting policy (``relay.report``): which windows the relay proves and sends.

``every``: each window, in order. ``risk``: only the windows that can move
the breaker, decided from the float model's score (milliseconds, no proof):

- the breaker is tripped by scores: recovery needs ``resetAfter`` consecutive
  calm windows, so each one is reported;
- a high streak is in progress: the next window may extend it;
- the float score is within ``margin`` of the trip threshold (the margin
  covers the circuit's gap to the float model, so no window whose proven
  score would trip is screened out);
- a heartbeat is due (``heartbeat_windows``), so watchers see the relay alive.

Every other window is *screened*: kept in the queue with its float score and
the reason. This is safe because the breaker counts streaks over consecutive
windows: a window that is not reported breaks a run, it can never build one.
What is given up is the calm streak's count outside a trip, which nothing
reads. The auditor's suppression check (``sentinel audit --data``) scores the
unreported windows from archived rows and flags any run that would have
tripped had it been reported.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("every", "risk")
#: The smallest margin below the trip threshold at which risk mode still proves a window.
MIN_MARGIN = 0.02


@dataclass(frozen=True)
class Decision:
    """Prove (and send) the window or screen it, and why (one word for logs, a sentence for the queue)."""

    prove: bool
    why: str
    reason: str


def auto_margin(measured_max_gap: float, tolerance: float) -> float:
    """Risk mode's default margin: twice the larger of the circuit's measured max gap to the float model and the
    fidelity tolerance its build enforced, and at least :data:`MIN_MARGIN`."""
    return max(MIN_MARGIN, 2 * max(measured_max_gap, tolerance))


def decide(mode: str, window_id: int, score: float, *, trip_threshold: float, margin: float, tripped: bool,
           manual: bool, high_streak: int, last_reported: int, heartbeat_windows: int) -> Decision:
    """The policy for one window, given the breaker as read now and the last window id reported or in flight."""
    if mode == "every":
        return Decision(prove=True, why="every", reason="relay.report = every")
    if tripped and not manual:
        return Decision(prove=True, why="tripped", reason="the breaker is tripped: recovery needs every calm window")
    if high_streak > 0:
        return Decision(prove=True, why="streak", reason=f"a high streak of {high_streak} is in progress")
    if score >= trip_threshold - margin:
        return Decision(prove=True, why="near_threshold",
                        reason=f"float score {score:.4f} >= trip threshold {trip_threshold:.4f} - margin {margin:.4f}")
    if heartbeat_windows and window_id - last_reported >= heartbeat_windows:
        return Decision(prove=True, why="heartbeat",
                        reason=f"{window_id - last_reported} windows since the last report (heartbeat every "
                               f"{heartbeat_windows})")
    held = "; tripped by hand (only governance recovers it)" if manual else ""
    return Decision(prove=False, why="calm",
                    reason=f"float score {score:.4f} < trip threshold {trip_threshold:.4f} - margin {margin:.4f}, no "
                           f"streak in progress{held}")


@dataclass(frozen=True)
class BatchPlan:
    """While the breaker is tripped: prove ``windows`` as one batch, hold them for the rest of it, or prove the
    first alone."""

    action: str  #: "batch" | "hold" | "single"
    windows: tuple[int, ...]
    reason: str


def plan_batch(first: int, pending: dict[int, int], *, k: int, cadence: int, now: int,
               latest: int | None = None) -> BatchPlan:
    """How to prove ``first`` (the oldest reportable window; ``pending``: window id -> end of every window waiting)
    while the breaker is tripped and takes K-window batches.

    Recovery needs a run of consecutive calm reports, and while tripped a report's latency only delays the
    unpause (the safe direction), so K consecutive windows go in one proof and one transaction (about a K-th of
    the gas each). The run waits for its K-th window until chain time ``now`` reaches ``first``'s end plus K
    cadences (one spare), and never past ``latest`` (the last chain time at which ``first`` can still be proved and
    mined before the breaker's max age); a feed that falls behind (a gap, an outage, its end) gets ``first`` proved
    alone.
    """
    run = [first]
    while len(run) < k and run[-1] + 1 in pending:
        run.append(run[-1] + 1)
    if len(run) == k:
        return BatchPlan("batch", tuple(run), f"the breaker is tripped: windows {run[0]}-{run[-1]} in one proof")
    due = pending[first] + k * cadence if latest is None else min(pending[first] + k * cadence, latest)
    if now < due:
        return BatchPlan("hold", tuple(run), f"the breaker is tripped: waiting for {k - len(run)} more window(s) to "
                                             f"prove {k} in one proof (until chain time {due})")
    return BatchPlan("single", (first,), f"the breaker is tripped; the rest of a {k}-window batch was not in the "
                                         f"feed by chain time {due}: proved alone")
