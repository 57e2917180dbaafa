"""The promotion criteria on two fresh-episode evaluations."""

from __future__ import annotations

import copy
from typing import Any

from sentinel.config import LifecycleConfig
from sentinel.lifecycle.promotion import evaluation_checks, passed


def _evaluation(drain: int = 100, flash: int = 90, false_trips: float = 0.5, lead: float = 40.0,
                seed: int = 2718) -> dict[str, Any]:
    return {"kind": "fresh", "seed": seed, "episodes": 500, "calibrated_to": None, "false_trip_budget_per_10k": 1.0,
            "detectors": {"lstm": {
                "families": {"drain": {"detected": drain, "events": 100, "recall": drain / 100},
                             "flash": {"detected": flash, "events": 100, "recall": flash / 100}},
                "false_trips": {"per_10k": false_trips}, "lead_rows": {"median": lead}}}}


def _failed(checks: list[Any]) -> list[str]:
    return [c.name for c in checks if not c.passed]


def test_at_least_as_good_on_the_same_episodes_passes() -> None:
    checks = evaluation_checks(_evaluation(flash=95, lead=41), _evaluation(), LifecycleConfig())
    assert passed(checks) and [c.name for c in checks] == [
        "same_episodes", "recall_drain", "recall_flash", "false_trips", "median_lead"]


def test_each_criterion_can_fail() -> None:
    production = _evaluation()
    assert _failed(evaluation_checks(_evaluation(flash=89), production, LifecycleConfig())) == ["recall_flash"]
    assert _failed(evaluation_checks(_evaluation(lead=39), production, LifecycleConfig())) == ["median_lead"]
    # production's rate is under the budget: the candidate may use the budget, not more
    assert passed(evaluation_checks(_evaluation(false_trips=1.0), production, LifecycleConfig()))
    assert _failed(evaluation_checks(_evaluation(false_trips=1.01), production, LifecycleConfig())) == ["false_trips"]


def test_tolerances_are_settings() -> None:
    production = _evaluation()
    loose = LifecycleConfig(recall_tolerance=0.02, lead_tolerance_rows=2)
    assert passed(evaluation_checks(_evaluation(flash=88, lead=38), production, loose))
    assert not passed(evaluation_checks(_evaluation(flash=87, lead=38), production, loose))


def test_other_episodes_or_no_evaluation_are_not_compared() -> None:
    checks = evaluation_checks(_evaluation(seed=1), _evaluation(), LifecycleConfig())
    assert _failed(checks) == ["same_episodes"] and len(checks) == 1
    calibrated = copy.deepcopy(_evaluation())
    calibrated["calibrated_to"] = "feed.csv"
    assert not passed(evaluation_checks(calibrated, _evaluation(), LifecycleConfig()))
    missing = evaluation_checks(None, _evaluation(), LifecycleConfig())
    assert _failed(missing) == ["evaluated"] and "for the candidate" in missing[0].detail


def test_a_family_production_was_evaluated_on_must_be_in_the_candidates() -> None:
    candidate = _evaluation()
    del candidate["detectors"]["lstm"]["families"]["flash"]
    assert _failed(evaluation_checks(candidate, _evaluation(), LifecycleConfig())) == ["recall_flash"]
