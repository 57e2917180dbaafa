"""Replay of SentinelBreaker's state machine from its events (pure).

Mirrors ``contracts/SentinelBreaker.sol`` line by line: ``submit`` (window id
strictly increasing, staleness, streaks, trip after ``tripAfter`` high scores,
recovery after ``resetAfter`` low scores once the cooldown has passed),
``trip`` (guardian or governance, never when tripped), ``recover``
(governance), ``setParams``/``setQuorum``, the attester set (swap-and-pop
removal, as the contract keeps its list), the verifier timelock (a change
must have been proposed and its eta reached) and the governance handover.

Every event the contract emits is checked against what the replayed machine
says it must emit, and the replay yields, for every report, the configuration
in force when it was accepted (attesters, quorum, verifier, score scale) so
signatures and proofs are checked against the set *at that block*.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.audit.findings import Finding, discrepancy, notice
from sentinel.data.windows import FUTURE_SKEW_SECONDS

ZERO = "0x0000000000000000000000000000000000000000"
WAD = 10**18
SCORE_SLACK = WAD // 100  #: the breaker refuses a score beyond [0, 1] by more than this (fixed-point rounding)
_U16_MAX = 2**16 - 1


@dataclass(frozen=True)
class ChainEvent:
    """One decoded breaker log, with its block's timestamp."""

    name: str
    block: int
    log_index: int
    tx: str
    timestamp: int
    args: dict[str, Any]


@dataclass(frozen=True)
class Params:
    """``SentinelBreaker.Params`` (thresholds in WAD)."""

    trip_threshold: int = 0
    reset_threshold: int = 0
    trip_after: int = 0
    reset_after: int = 0
    cooldown: int = 0
    max_age: int = 0
    quorum: int = 0


@dataclass(frozen=True)
class State:
    """``SentinelBreaker.State``."""

    last_window_id: int = 0
    last_window_end: int = 0  #: 0 before the first report
    tripped_at: int = 0
    high_streak: int = 0
    low_streak: int = 0
    tripped: bool = False
    manual: bool = False  #: tripped by the guardian or governance: only governance recovers


@dataclass(frozen=True)
class Snapshot:
    """Everything the replay tracks; also what is read from the contract to compare or to start from."""

    state: State = field(default_factory=State)
    params: Params = field(default_factory=Params)
    verifier: str = ZERO
    score_scale: int = 0
    cadence: int = 0  #: seconds between the model's rows: window id = window end // cadence
    attesters: tuple[str, ...] = ()
    governance: str = ZERO
    pending_governance: str = ZERO
    guardian: str = ZERO
    pending_verifier: str = ZERO
    pending_score_scale: int = 0
    pending_cadence: int = 0
    pending_verifier_eta: int = 0
    batch_verifier: str = ZERO  #: the batch circuit's verifier (zero: batches disabled), switched with the verifier
    batch_windows: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class ReportContext:
    """The configuration a report was accepted under, and what the replay made of it."""

    event: ChainEvent
    attesters: frozenset[str]
    quorum: int
    verifier: str
    score_scale: int
    params: Params
    tripped_after: bool
    batch_verifier: str = ZERO  #: the batch verifier in force (a report that came in a submitBatch)
    batch_windows: int = 0


@dataclass
class ReplayResult:
    """Findings, the final replayed snapshot, and per-report contexts and markers for the timeline."""

    final: Snapshot
    findings: list[Finding] = field(default_factory=list)
    reports: list[ReportContext] = field(default_factory=list)
    trips: list[ChainEvent] = field(default_factory=list)
    recoveries: list[ChainEvent] = field(default_factory=list)
    verifier_changes: list[ChainEvent] = field(default_factory=list)
    batch_verifier_changes: list[ChainEvent] = field(default_factory=list)
    param_changes: list[tuple[ChainEvent, Params]] = field(default_factory=list)
    #: every event in chain order with the replayed snapshot after it (an automatic Tripped or Recovered
    #: changes nothing until its Report)
    history: list[tuple[ChainEvent, Snapshot]] = field(default_factory=list)
    events_checked: int = 0


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _inc(x: int) -> int:
    return x if x == _U16_MAX else x + 1


def last_window(s: State, cadence: int) -> int:
    """The id of the last accepted window at ``cadence`` (the breaker re-derives it: a new verifier may change
    the cadence)."""
    return s.last_window_end // cadence if cadence else s.last_window_id


def streaks(s: State, p: Params, cadence: int, window_id: int, score: int) -> tuple[int, int]:
    """High and low streaks once window ``window_id`` scoring ``score`` (WAD) is accepted in state ``s``.

    ``submit``'s rule: streaks are runs of consecutive windows, so after a gap (or before the first report) both
    start again from this window. The replay and the suppression check both count with this function.
    """
    follows = s.last_window_end != 0 and window_id == last_window(s, cadence) + 1
    run_high, run_low = (s.high_streak, s.low_streak) if follows else (0, 0)
    high = _inc(run_high) if score >= p.trip_threshold else 0
    low = _inc(run_low) if score <= p.reset_threshold else 0
    return high, low


def trips(s: State, p: Params, high: int) -> bool:
    """``submit`` trips the breaker: not tripped yet and a high streak of ``tripAfter`` windows."""
    return not s.tripped and high >= p.trip_after


def recovers(s: State, p: Params, low: int, now: int) -> bool:
    """``submit`` at block time ``now`` recovers the breaker: tripped automatically (a manual trip waits for
    governance), a calm streak of ``resetAfter`` windows, and the cooldown since the trip has passed."""
    return s.tripped and not s.manual and low >= p.reset_after and now >= s.tripped_at + p.cooldown


class _Machine:
    def __init__(self, start: Snapshot) -> None:
        self.s = start
        self.out = ReplayResult(final=start)
        self.auto: list[ChainEvent] = []  # Tripped/Recovered emitted by submit, waiting for their Report

    def bad(self, e: ChainEvent, message: str) -> None:
        self.out.findings.append(discrepancy("state-machine", message, window_id=e.args.get("windowId"),
                                             block=e.block, tx=e.tx))

    # -- reports -------------------------------------------------------------------
    def report(self, e: ChainEvent) -> None:
        s, p = self.s.state, self.s.params
        a = e.args
        wid, end, score = int(a["windowId"]), int(a["windowEnd"]), int(a["score"])
        c = self.s.cadence
        if c and wid != end // c:
            self.bad(e, f"window id {wid} accepted for a window ending at {end}: the cadence {c} s gives {end // c}")
        last_id = last_window(s, c)
        if s.last_window_end and wid <= last_id:
            self.bad(e, f"report for window {wid} accepted after window {last_id} (ids must increase)")
        if end + p.max_age < e.timestamp:
            self.bad(e, f"stale window accepted: ended {end}, block time {e.timestamp}, max age {p.max_age} s")
        if end > e.timestamp + FUTURE_SKEW_SECONDS:
            self.bad(e, f"window from the future accepted: ends {end}, block time {e.timestamp}")
        if not -SCORE_SLACK <= score <= WAD + SCORE_SLACK:
            self.bad(e, f"score {score / WAD:g} accepted: the breaker refuses scores outside [0, 1] (+-0.01)")
        high, low = streaks(s, p, c, wid, score)
        nxt = replace(s, last_window_id=wid, last_window_end=end, high_streak=high, low_streak=low)
        expect: str | None = None
        if trips(s, p, high):
            nxt = replace(nxt, tripped=True, tripped_at=e.timestamp, low_streak=0)
            expect = "Tripped"
        elif recovers(s, p, low, e.timestamp):
            nxt = State(last_window_id=wid, last_window_end=end)
            expect = "Recovered"
        emitted = [x for x in self.auto if x.tx == e.tx]
        self.auto = [x for x in self.auto if x.tx != e.tx]
        got = emitted[0].name if emitted else None
        if len(emitted) > 1 or got != expect:
            self.bad(e, f"window {wid}: contract emitted {got or 'no trip/recovery'}, "
                        f"the replayed state machine says {expect or 'none'}")
        for x in emitted:
            if int(x.args["windowId"]) != wid:
                self.bad(x, f"{x.name} names window {x.args['windowId']}, its report is window {wid}")
            (self.out.trips if x.name == "Tripped" else self.out.recoveries).append(x)
        if bool(a["tripped"]) != nxt.tripped:
            self.bad(e, f"window {wid}: Report says tripped={bool(a['tripped'])}, replay says {nxt.tripped}")
        self.s = replace(self.s, state=nxt)
        self.out.reports.append(ReportContext(e, frozenset(x.lower() for x in self.s.attesters), p.quorum,
                                              self.s.verifier, self.s.score_scale, p, nxt.tripped,
                                              self.s.batch_verifier, self.s.batch_windows))

    def tripped(self, e: ChainEvent) -> None:
        if not e.args["byGuardian"]:
            self.auto.append(e)
            return
        s, by = self.s.state, e.args["by"]
        if not (_same(by, self.s.guardian) or _same(by, self.s.governance)):
            self.bad(e, f"manual trip by {by}, who is neither guardian nor governance")
        if s.manual:
            self.bad(e, "manual trip while already tripped by hand")
        if int(e.args["windowId"]) != s.last_window_id:
            self.bad(e, f"manual trip names window {e.args['windowId']}, the last report was {s.last_window_id}")
        # A manual trip over an automatic one keeps the time of the first trip.
        tripped_at = s.tripped_at if s.tripped else e.timestamp
        self.s = replace(self.s, state=replace(s, tripped=True, manual=True, tripped_at=tripped_at,
                                               high_streak=0, low_streak=0))
        self.out.trips.append(e)

    def recovered(self, e: ChainEvent) -> None:
        if not e.args["byGovernance"]:
            self.auto.append(e)
            return
        s, by = self.s.state, e.args["by"]
        if not _same(by, self.s.governance):
            self.bad(e, f"governance recovery by {by}, who is not governance ({self.s.governance})")
        if not s.tripped:
            self.bad(e, "governance recovery while not tripped")
        self.s = replace(self.s, state=State(last_window_id=s.last_window_id, last_window_end=s.last_window_end))
        self.out.recoveries.append(e)

    # -- configuration ---------------------------------------------------------------
    def params_changed(self, e: ChainEvent) -> None:
        a = e.args
        params = replace(self.s.params, trip_threshold=int(a["tripThreshold"]),
                         reset_threshold=int(a["resetThreshold"]), trip_after=int(a["tripAfter"]),
                         reset_after=int(a["resetAfter"]),
                         cooldown=int(a["cooldown"]), max_age=int(a["maxAge"]))
        # New parameters start new streaks (the constructor's ParamsChanged finds them at zero anyway).
        self.s = replace(self.s, params=params, state=replace(self.s.state, high_streak=0, low_streak=0))
        self.out.param_changes.append((e, params))

    def quorum_changed(self, e: ChainEvent) -> None:
        quorum = int(e.args["quorum"])
        if not 1 <= quorum <= len(self.s.attesters):
            self.bad(e, f"quorum {quorum} with {len(self.s.attesters)} attesters")
        self.s = replace(self.s, params=replace(self.s.params, quorum=quorum))

    def attester_added(self, e: ChainEvent) -> None:
        who = e.args["attester"]
        if any(_same(who, x) for x in self.s.attesters):
            self.bad(e, f"attester {who} added twice")
        self.s = replace(self.s, attesters=(*self.s.attesters, who))

    def attester_removed(self, e: ChainEvent) -> None:
        who = e.args["attester"]
        items = list(self.s.attesters)
        idx = next((i for i, x in enumerate(items) if _same(x, who)), None)
        if idx is None:
            self.bad(e, f"unknown attester {who} removed")
            return
        items[idx] = items[-1]  # the contract's swap-and-pop: keeps attesters() order comparable
        items.pop()
        if len(items) < self.s.params.quorum:
            self.bad(e, f"attester removal left {len(items)} attesters for quorum {self.s.params.quorum}")
        self.s = replace(self.s, attesters=tuple(items))

    def verifier_proposed(self, e: ChainEvent) -> None:
        self.s = replace(self.s, pending_verifier=e.args["verifier"], pending_score_scale=int(e.args["scoreScale"]),
                         pending_cadence=int(e.args["cadence"]), pending_verifier_eta=int(e.args["eta"]))

    def verifier_cancelled(self, e: ChainEvent) -> None:
        if not _same(e.args["verifier"], self.s.pending_verifier):
            self.bad(e, f"cancelled verifier {e.args['verifier']} was not the pending one")
        self.s = replace(self.s, pending_verifier=ZERO, pending_score_scale=0, pending_cadence=0,
                         pending_verifier_eta=0)

    def verifier_changed(self, e: ChainEvent) -> None:
        a = e.args
        if not _same(a["previous"], self.s.verifier):
            self.bad(e, f"verifier change from {a['previous']}, but the active verifier was {self.s.verifier}")
        constructing = _same(a["previous"], ZERO)
        if not constructing:
            if (not _same(a["verifier"], self.s.pending_verifier) or int(a["scoreScale"]) != self.s.pending_score_scale
                    or int(a["cadence"]) != self.s.pending_cadence):
                self.bad(e, f"verifier changed to {a['verifier']} without that proposal pending")
            elif e.timestamp < self.s.pending_verifier_eta:
                self.bad(e, f"verifier changed at {e.timestamp}, before its timelock eta {self.s.pending_verifier_eta}")
        state = self.s.state if constructing else replace(self.s.state, high_streak=0, low_streak=0)
        self.s = replace(self.s, verifier=a["verifier"], score_scale=int(a["scoreScale"]), cadence=int(a["cadence"]),
                         state=state, pending_verifier=ZERO, pending_score_scale=0, pending_cadence=0,
                         pending_verifier_eta=0)
        self.out.verifier_changes.append(e)

    def batch_verifier_changed(self, e: ChainEvent) -> None:
        """Set at construction and by executeVerifier, right after its VerifierChanged (whose checks cover the
        timelock)."""
        a = e.args
        if not _same(a["previous"], self.s.batch_verifier):
            self.bad(e, f"batch verifier change from {a['previous']}, but the active one was {self.s.batch_verifier}")
        self.s = replace(self.s, batch_verifier=a["verifier"], batch_windows=int(a["windows"]))
        self.out.batch_verifier_changes.append(e)

    def governance_started(self, e: ChainEvent) -> None:
        self.s = replace(self.s, pending_governance=e.args["pending"])

    def governance_changed(self, e: ChainEvent) -> None:
        a = e.args
        if not _same(a["previous"], ZERO) and not _same(a["governance"], self.s.pending_governance):
            self.bad(e, f"governance moved to {a['governance']} without a pending transfer to it")
        self.s = replace(self.s, governance=a["governance"], pending_governance=ZERO)

    def guardian_changed(self, e: ChainEvent) -> None:
        self.s = replace(self.s, guardian=e.args["guardian"])

    def flush(self) -> None:
        for x in self.auto:
            self.bad(x, f"{x.name} emitted by a transaction without a Report")
        self.auto = []


_HANDLERS = {
    "Report": _Machine.report, "Tripped": _Machine.tripped, "Recovered": _Machine.recovered,
    "ParamsChanged": _Machine.params_changed, "QuorumChanged": _Machine.quorum_changed,
    "AttesterAdded": _Machine.attester_added, "AttesterRemoved": _Machine.attester_removed,
    "VerifierChangeProposed": _Machine.verifier_proposed, "VerifierChangeCancelled": _Machine.verifier_cancelled,
    "VerifierChanged": _Machine.verifier_changed, "BatchVerifierChanged": _Machine.batch_verifier_changed,
    "GovernanceTransferStarted": _Machine.governance_started,
    "GovernanceChanged": _Machine.governance_changed, "GuardianChanged": _Machine.guardian_changed,
}


def replay(events: list[ChainEvent], start: Snapshot | None = None) -> ReplayResult:
    """Replay ``events`` (any order; sorted by block and log index) from ``start`` (default: before deployment)."""
    machine = _Machine(start or Snapshot())
    current_tx: str | None = None
    for e in sorted(events, key=lambda x: (x.block, x.log_index)):
        if e.tx != current_tx:
            machine.flush()
            current_tx = e.tx
        handler = _HANDLERS.get(e.name)
        if handler is None:
            machine.out.findings.append(notice("state-machine", f"unknown event {e.name} ignored",
                                               block=e.block, tx=e.tx))
            continue
        handler(machine, e)
        machine.out.events_checked += 1
        machine.out.history.append((e, machine.s))
    machine.flush()
    machine.out.final = machine.s
    return machine.out


def compare_final(replayed: Snapshot, onchain: Snapshot) -> list[Finding]:
    """Differences between the replayed final snapshot and the contract's state (attesters compared as sets)."""
    found = []
    pairs: list[tuple[str, Any, Any]] = [
        (f"state.{k}", getattr(replayed.state, k), getattr(onchain.state, k)) for k in State.__dataclass_fields__
    ] + [(f"params.{k}", getattr(replayed.params, k), getattr(onchain.params, k)) for k in Params.__dataclass_fields__]
    for name in ("verifier", "score_scale", "cadence", "governance", "pending_governance", "guardian",
                 "pending_verifier", "pending_score_scale", "pending_cadence", "pending_verifier_eta", "batch_verifier",
                 "batch_windows"):
        pairs.append((name, getattr(replayed, name), getattr(onchain, name)))
    pairs.append(("attesters", sorted(x.lower() for x in replayed.attesters),
                  sorted(x.lower() for x in onchain.attesters)))
    for name, mine, theirs in pairs:
        equal = _same(mine, theirs) if isinstance(mine, str) and isinstance(theirs, str) else mine == theirs
        if not equal:
            found.append(discrepancy("final-state",
                                     f"{name}: replay of the events gives {mine}, the contract holds {theirs}"))
    return found
