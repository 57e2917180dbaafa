"""Breaker event logs built the way SentinelBreaker emits them, for the auditor's hermetic tests."""

from __future__ import annotations

import itertools

from sentinel.audit.replay import ZERO, ChainEvent

WAD = 10**18
GOV, GUARD, A, B, C, V1, V2 = (f"0x{i:040x}" for i in range(1, 8))
TRIP, RESET = int(0.9 * WAD), int(0.4 * WAD)
CADENCE = 60


class Log:
    """Builds events the way the contract emits them (one tx per call, blocks increasing)."""

    def __init__(self, trip_after: int = 3, reset_after: int = 2, cooldown: int = 600, max_age: int = 1800,
                 lag: int = 70) -> None:
        self.events: list[ChainEvent] = []
        self.block = 0
        self.time = 1_000_000
        self._tx = itertools.count()
        tx = self.tx()
        # Each report is the next window, ending 30 s into its minute and reported ``lag`` seconds after its end.
        self.window = (self.time + CADENCE - lag - 30) // CADENCE - 1
        self.emit("GovernanceChanged", tx, previous=ZERO, governance=GOV)
        self.emit("GuardianChanged", tx, previous=ZERO, guardian=GUARD)
        self.emit("VerifierChanged", tx, previous=ZERO, verifier=V1, scoreScale=10, cadence=CADENCE)
        self.emit("BatchVerifierChanged", tx, previous=ZERO, verifier=ZERO, windows=0)
        for who in (A, B, C):
            self.emit("AttesterAdded", tx, attester=who)
        self.emit("ParamsChanged", tx, tripThreshold=TRIP, resetThreshold=RESET, tripAfter=trip_after,
                  resetAfter=reset_after, cooldown=cooldown, maxAge=max_age)
        self.emit("QuorumChanged", tx, quorum=2)

    def tx(self, seconds: int = 60) -> str:
        self.block += 1
        self.time += seconds
        return f"0x{next(self._tx):064x}"

    def emit(self, name: str, tx: str, **args) -> ChainEvent:
        e = ChainEvent(name, self.block, len(self.events), tx, self.time, args)
        self.events.append(e)
        return e

    def report(self, score: float, tripped: bool, auto: str | None = None, window: int | None = None) -> None:
        tx = self.tx()
        self.window = window if window is not None else self.window + 1
        if auto == "Tripped":
            self.emit("Tripped", tx, windowId=self.window, by=GOV, byGuardian=False)
        elif auto == "Recovered":
            self.emit("Recovered", tx, windowId=self.window, by=GOV, byGovernance=False)
        self.emit("Report", tx, windowId=self.window, windowEnd=self.window * CADENCE + 30, inputHash=1,
                  score=int(score * WAD),
                  submitter=GOV, tripped=tripped)

    def skip(self, n: int) -> list[tuple[int, int]]:
        """``n`` windows nobody reports: the clock moves on as they pass; returns their (id, end)."""
        out = []
        for _ in range(n):
            self.window += 1
            self.time += 60
            out.append((self.window, self.window * CADENCE + 30))
        return out
