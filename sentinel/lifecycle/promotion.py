"""The promotion criteria, explicit and checked by a command (``sentinel retrain``, ``sentinel shadow check``).

A candidate may be proposed to a breaker only if, on the same fresh episodes
(the same ``evaluate --fresh`` seed and count) as production's evaluation:

1. its recall on every crash family production was evaluated on is at least
   production's, less ``lifecycle.recall_tolerance``;
2. its false trips per 10k healthy rows are at most production's, or within
   the evaluation's false-trip budget when production's rate is below it;
3. its median lead to the price bottom is at least production's, less
   ``lifecycle.lead_tolerance_rows``.

Evaluations from different episodes are not compared: that is a failed check,
not a pass. On the live feed, from the relay's shadow scores
(:mod:`sentinel.lifecycle.shadow`, ``sentinel shadow check``):

4. ``shadow_windows``: it was shadow-scored on at least
   ``lifecycle.min_shadow_windows`` windows beside production;
5. ``no_extra_trips``: over that period it made no trip that production did
   not make within ``model.horizon`` windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentinel.config import LifecycleConfig

#: The detector whose figures decide (the evaluation JSON also holds every baseline's).
DETECTOR = "lstm"


@dataclass(frozen=True)
class Check:
    """One criterion: its name, whether it holds, and the figures that say so."""

    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def evaluation_checks(candidate: dict[str, Any] | None, production: dict[str, Any] | None,
                      settings: LifecycleConfig) -> list[Check]:
    """Criteria 1-3 on two ``evaluate --fresh --json`` documents (None: that version has no evaluation)."""
    if candidate is None or production is None:
        missing = [who for who, doc in (("candidate", candidate), ("production", production)) if doc is None]
        who = " and the ".join(missing)
        return [Check("evaluated", passed=False, detail=f"no fresh-episode evaluation for the {who} "
                      "(models/evaluation.json: `sentinel models evaluate VERSION`)")]
    same = same_episodes(candidate, production)
    checks = [Check("same_episodes", same,
                    f"candidate {_describe(candidate)}, production {_describe(production)}"
                    + ("" if same else ": evaluate both on the same seed and count"))]
    if not same:
        return checks
    cand, prod = _lstm(candidate), _lstm(production)
    tolerance = settings.recall_tolerance
    for family, figures in sorted(prod.get("families", {}).items()):
        theirs = cand.get("families", {}).get(family)
        if theirs is None:
            checks.append(Check(f"recall_{family}", passed=False,
                                detail=f"the candidate was not evaluated on {family}"))
            continue
        ok = float(theirs["recall"]) >= float(figures["recall"]) - tolerance - 1e-12
        checks.append(Check(f"recall_{family}", ok,
                            f"{theirs['detected']}/{theirs['events']} = {float(theirs['recall']):.3f} vs production "
                            f"{figures['detected']}/{figures['events']} = {float(figures['recall']):.3f}"
                            + (f" (tolerance {tolerance:g})" if tolerance else "")))
    budget = float(production.get("false_trip_budget_per_10k", 0.0))
    mine, theirs_rate = float(cand["false_trips"]["per_10k"]), float(prod["false_trips"]["per_10k"])
    allowed = max(theirs_rate, budget)
    checks.append(Check("false_trips", mine <= allowed + 1e-12,
                        f"{mine:.2f} per 10k healthy rows vs production {theirs_rate:.2f} (allowed {allowed:.2f}: "
                        f"production's or the budget {budget:g}, whichever is higher)"))
    lead, theirs_lead = _median_lead(cand), _median_lead(prod)
    lead_tolerance = settings.lead_tolerance_rows
    checks.append(Check("median_lead", lead >= theirs_lead - lead_tolerance,
                        f"{lead:g} rows vs production {theirs_lead:g}"
                        + (f" (tolerance {lead_tolerance:g})" if lead_tolerance else "")))
    return checks


def same_episodes(one: dict[str, Any] | None, other: dict[str, Any] | None) -> bool:
    """True when two evaluations ran on the same fresh episodes (kind, seed, count and calibration)."""
    return one is not None and other is not None and _episodes(one) == _episodes(other)


def _episodes(doc: dict[str, Any]) -> tuple[Any, ...]:
    return doc.get("kind"), doc.get("seed"), doc.get("episodes"), doc.get("calibrated_to")


def _describe(doc: dict[str, Any]) -> str:
    like = f", like {doc['calibrated_to']}" if doc.get("calibrated_to") else ""
    return f"{doc.get('kind')} seed {doc.get('seed')} x{doc.get('episodes')}{like}"


def _lstm(doc: dict[str, Any]) -> dict[str, Any]:
    figures = (doc.get("detectors") or {}).get(DETECTOR)
    if not isinstance(figures, dict):
        return {"families": {}, "false_trips": {"per_10k": float("inf")}, "lead_rows": {"median": float("-inf")}}
    return figures


def _median_lead(figures: dict[str, Any]) -> float:
    median = (figures.get("lead_rows") or {}).get("median")
    return float(median) if median is not None else float("-inf")


def passed(checks: list[Check]) -> bool:
    """True when every check holds (and there is at least one)."""
    return bool(checks) and all(c.passed for c in checks)
