"""Honest evaluation of a detector beside the baselines, on the same split.

For each detector: thresholds are tuned on the validation episodes (unless the
detector's rule is fixed), then the trip policy runs over the held-out test
episodes and, separately, over the episodes of the family held out of training
entirely. Window-level PR-AUC and ROC-AUC come with the event-level figures.
Nothing here reads a stored metric: every number is recomputed from scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sentinel.data.validate import MarketData
from sentinel.model.baselines import Detector
from sentinel.model.dataset import LabeledWindows, Split, episode_traces, labeled_windows
from sentinel.model.policy import TripPolicy, evaluate_policy, tune_policy


@dataclass(frozen=True)
class EvalSettings:
    """What evaluation needs from the model configuration."""

    window: int
    horizon: int
    trip_after: int
    reset_after: int
    reset_ratio: float
    false_trip_budget: float


@dataclass(frozen=True)
class EvalSets:
    """The labelled windows of each evaluation part."""

    val: LabeledWindows
    test: LabeledWindows
    holdout: LabeledWindows | None


def eval_sets(data: MarketData, split: Split, settings: EvalSettings) -> EvalSets:
    """Cut the validation, test and held-out-family windows once for all detectors."""
    def cut(eps: tuple[int, ...]) -> LabeledWindows:
        return labeled_windows(data, eps, settings.window, settings.horizon)

    return EvalSets(cut(split.val), cut(split.test), cut(split.holdout) if split.holdout else None)


def _auc(y: np.ndarray, scores: np.ndarray) -> tuple[float | None, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.min() == y.max():
        return None, None
    return float(average_precision_score(y, scores)), float(roc_auc_score(y, scores))


def _part(data: MarketData, windows: LabeledWindows, scores: np.ndarray, policy: TripPolicy,
          settings: EvalSettings) -> dict[str, Any]:
    report = evaluate_policy(episode_traces(data, windows, scores), policy, settings.horizon)
    pr_auc, roc_auc = _auc(windows.y, scores)
    out = report.to_dict()
    out.update({"pr_auc": pr_auc, "roc_auc": roc_auc, "windows": len(windows),
                "positive_windows": int(windows.y.sum())})
    return out


def evaluate_detector(
    data: MarketData, sets: EvalSets, detector: Detector, settings: EvalSettings
) -> dict[str, Any]:
    """Tune (if applicable) on validation, then report on test and the held-out family."""
    val_scores = detector.score(sets.val.x)
    if detector.tuned:
        policy, _ = tune_policy(
            episode_traces(data, sets.val, val_scores), settings.horizon, settings.false_trip_budget,
            settings.trip_after, settings.reset_after, settings.reset_ratio,
        )
    else:
        policy = TripPolicy(0.5, 0.5, settings.trip_after, settings.reset_after)
    result: dict[str, Any] = {
        "policy": policy.to_dict(),
        "validation": _part(data, sets.val, val_scores, policy, settings),
        "test": _part(data, sets.test, detector.score(sets.test.x), policy, settings),
    }
    if sets.holdout is not None:
        result["holdout_family"] = _part(data, sets.holdout, detector.score(sets.holdout.x), policy, settings)
    return result


def compare(results: dict[str, dict[str, Any]], model: str, budget: float) -> dict[str, Any]:
    """Does ``model`` beat every baseline on lead time, each within the false-trip budget?

    Lead time (median rows from trip to price bottom) decides; recall is shown
    beside it. A baseline whose false-trip rate exceeds both the budget and the
    model's is not a fair comparison point: it is listed but cannot "win".
    """
    verdicts: dict[str, Any] = {}
    for part in ("test", "holdout_family"):
        if part not in results[model]:
            continue
        ours = results[model][part]
        lines = []
        beats_all = True
        for name, res in results.items():
            if name == model:
                continue
            theirs = res[part]
            if theirs["false_trips_per_10k"] > max(budget, ours["false_trips_per_10k"]):
                lines.append(
                    f"{name}: over the false-trip rate ({theirs['false_trips_per_10k']:.2f}/10k), not comparable")
                continue
            our_lead = ours["median_lead_rows"] if ours["median_lead_rows"] is not None else -1
            their_lead = theirs["median_lead_rows"] if theirs["median_lead_rows"] is not None else -1
            ok = our_lead > their_lead
            beats_all &= ok
            lines.append(
                f"{name}: recall {theirs['event_recall']:.2f} vs {ours['event_recall']:.2f}, "
                f"median lead {their_lead:g} vs {our_lead:g} rows -> {'beaten' if ok else 'NOT beaten'}"
            )
        verdicts[part] = {"beats_all_baselines": bool(beats_all), "details": lines}
    return verdicts
