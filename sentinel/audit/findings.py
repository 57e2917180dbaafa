"""What an audit finds (pure): findings, check tallies and the report's exit code.

Two severities. A *discrepancy* is something the chain, the artifacts or the
data contradict (a proof that does not verify, a verifier for another model,
an input hash the archived rows do not give): any one makes the audit exit 1.
A *notice* is worth knowing but contradicts nothing (a window nobody reported,
an attester rotated by governance, a verifier upgraded through the timelock):
it is listed, and the exit code stays 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

DISCREPANCY = "discrepancy"
NOTICE = "notice"
SEVERITIES = (DISCREPANCY, NOTICE)

EXIT_CLEAN = 0
EXIT_DISCREPANCY = 1


@dataclass(frozen=True)
class Finding:
    """One thing the audit found, located on chain where that makes sense."""

    check: str
    severity: str
    message: str
    window_id: int | None = None
    block: int | None = None
    tx: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def discrepancy(check: str, message: str, **where: Any) -> Finding:
    """A finding that makes the audit fail."""
    return Finding(check, DISCREPANCY, message, **where)


def notice(check: str, message: str, **where: Any) -> Finding:
    """A finding that is reported but does not fail the audit."""
    return Finding(check, NOTICE, message, **where)


@dataclass
class Tally:
    """How many items one check looked at and how many passed (skipped ones are counted apart)."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    note: str = ""

    def record(self, *, ok: bool) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1


@dataclass
class AuditReport:
    """Everything an audit run produced; ``exit_code`` is 1 iff any discrepancy was found."""

    summary: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Tally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    timeline: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def tally(self, check: str) -> Tally:
        """The tally of ``check``, created on first use (so every check run shows in the table)."""
        return self.checks.setdefault(check, Tally())

    def add(self, *findings: Finding) -> None:
        self.findings.extend(findings)

    @property
    def discrepancies(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == DISCREPANCY]

    @property
    def exit_code(self) -> int:
        return EXIT_DISCREPANCY if self.discrepancies else EXIT_CLEAN

    def counts(self) -> dict[str, int]:
        """Findings per severity (both keys always present)."""
        counter = Counter(f.severity for f in self.findings)
        return {s: counter.get(s, 0) for s in SEVERITIES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.exit_code == EXIT_CLEAN,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "checks": {name: asdict(t) for name, t in self.checks.items()},
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "timeline": self.timeline,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
