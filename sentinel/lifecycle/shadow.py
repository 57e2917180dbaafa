"""What a candidate would have done on the live feed: the shadow report, and the shadow promotion criteria.

The relay records each candidate's float score of every window it decides on
beside production's (:mod:`sentinel.relay.shadow`). Here each side runs under
its own model card's trip policy (:func:`sentinel.model.policy.trip_steps`,
the evaluation's simulation): a trip is ``trip_after`` consecutive window
ids at or above its trip threshold (a missing window id restarts the streak,
as on the breaker), recovery ``reset_after`` consecutive ones at or below its
reset threshold. Production's side switches policy where the relay's
production version changed (a verifier upgrade), starting untripped.

Each candidate trip is matched to production's nearest trip (the difference in
windows and seconds; negative: the candidate tripped earlier). A candidate trip
with no production trip within ``model.horizon`` windows is an *extra trip*; a
production trip with no candidate trip that close is a *missed trip*. Windows
farther than the horizon from every production trip are the *healthy
stretches*: the candidate's trips there, per 10,000 of them, with the exact
Poisson 95 % interval of the evaluation (:func:`sentinel.model.evaluate.trip_rate`),
estimate its false-trip rate on the live feed.

Shadow promotion criteria (beside :func:`sentinel.lifecycle.promotion.evaluation_checks`):
``shadow_windows``, at least ``lifecycle.min_shadow_windows`` windows scored;
``no_extra_trips``, no extra trip over the shadow period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import LifecycleConfig, SentinelConfig
from sentinel.errors import ConfigError, RelayError
from sentinel.lifecycle.promotion import Check, evaluation_checks, passed, same_episodes
from sentinel.model.policy import TripPolicy
from sentinel.relay.queue import Queue, ShadowRow
from sentinel.versions import Version, find_version, known_versions


def card_policy(version: Version) -> TripPolicy:
    """The trip policy of ``version``'s model card; a ConfigError naming the card when it has none."""
    import json

    try:
        card = json.loads(version.layout.model_card.read_text(encoding="utf-8"))
        return TripPolicy(**card["trip_policy"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{version.layout.model_card}: no trip policy for version {version.id} ({exc})") from exc


def trip_windows(window_ids: Sequence[int], scores: Sequence[float], policy: TripPolicy) -> list[int]:
    """The window ids at which ``policy`` trips on these scores (ids increasing; a missing id restarts a streak)."""
    import numpy as np

    from sentinel.model.policy import trip_steps

    if not window_ids:
        return []
    first = int(window_ids[0])
    dense = np.full(int(window_ids[-1]) - first + 1, np.nan)  # NaN is neither above nor below: it ends any run
    dense[np.asarray(window_ids, dtype=np.int64) - first] = np.asarray(scores, dtype=np.float64)
    return [first + int(step) for step in trip_steps(dense, policy)]


@dataclass(frozen=True)
class Side:
    """One side's scores over the shadow period, in window order."""

    window_ids: list[int]
    scores: list[float]
    versions: list[str]  #: the version that scored each window (production's may change mid-period)


def _segments(side: Side) -> list[tuple[str, int, int]]:
    """(version, start, stop) index ranges of consecutive windows scored by the same version."""
    out: list[tuple[str, int, int]] = []
    for i, v in enumerate(side.versions):
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1], i + 1)
        else:
            out.append((v, i, i + 1))
    return out


def _trips_and_above(side: Side, policies: dict[str, TripPolicy]) -> tuple[list[int], int]:
    """The side's trip window ids and its windows at or above their own trip threshold."""
    trips: list[int] = []
    above = 0
    for version, start, stop in _segments(side):
        policy = policies[version]
        scores = side.scores[start:stop]
        trips += trip_windows(side.window_ids[start:stop], scores, policy)
        above += sum(1 for s in scores if s >= policy.trip_threshold)
    return trips, above


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).isoformat().replace("+00:00", "Z")


def candidate_report(rows: Sequence[ShadowRow], policies: dict[str, TripPolicy], horizon: int) -> dict[str, Any]:
    """The shadow report of one candidate from its rows (one version, one market; see the module doc).
    ``policies`` holds the trip policy of the candidate and of every production version in the rows."""
    from sentinel.model.evaluate import trip_rate

    rows = sorted(rows, key=lambda r: r.window_id)
    if not rows:
        raise RelayError("a shadow report needs at least one shadow score")
    version = rows[0].version
    ids, ends = [r.window_id for r in rows], [r.end_unix for r in rows]
    cand = Side(ids, [r.score for r in rows], [version] * len(rows))
    prod = Side(ids, [r.production_score for r in rows], [r.production_version for r in rows])
    cand_trips, cand_above = _trips_and_above(cand, policies)
    prod_trips, prod_above = _trips_and_above(prod, policies)
    end_of = dict(zip(ids, ends, strict=True))
    matched: list[dict[str, Any]] = []
    for trip in cand_trips:
        nearest = min(prod_trips, key=lambda p: (abs(trip - p), p)) if prod_trips else None
        entry: dict[str, Any] = {"window_id": trip, "end": _iso(end_of[trip]), "production_window_id": nearest,
                                 "windows": None, "seconds": None, "extra": True}
        if nearest is not None:
            entry.update(windows=trip - nearest, seconds=end_of[trip] - end_of[nearest],
                         extra=abs(trip - nearest) > horizon)
        matched.append(entry)
    missed = [p for p in prod_trips if not any(abs(p - c) <= horizon for c in cand_trips)]
    healthy = [w for w in ids if all(abs(w - p) > horizon for p in prod_trips)]
    healthy_set = set(healthy)
    false_trips = sum(1 for t in cand_trips if t in healthy_set)
    production_versions = sorted(set(prod.versions), key=prod.versions.index)
    return {
        "version": version,
        "production_versions": production_versions,
        "windows": len(rows),
        "first_window_end": _iso(ends[0]),
        "last_window_end": _iso(ends[-1]),
        "horizon_windows": horizon,
        "policy": policies[version].to_dict(),
        "production_policies": {v: policies[v].to_dict() for v in production_versions},
        "above_threshold": {"candidate": cand_above, "production": prod_above},
        "trips": {"candidate": matched,
                  "production": [{"window_id": p, "end": _iso(end_of[p]), "missed": p in missed} for p in prod_trips]},
        "extra_trips": sum(1 for m in matched if m["extra"]),
        "missed_trips": len(missed),
        "false_trips": {**trip_rate(false_trips, len(healthy)), "healthy_windows": len(healthy)},
    }


def _queue(layout: ArtifactLayout, config: SentinelConfig, db: Path | None) -> Queue:
    from sentinel.relay.daemon import queue_path

    path = queue_path(layout, config, db)
    if not path.exists():
        raise RelayError(f"{path}: no relay queue yet", hint="run the relay with lifecycle.shadow set")
    return Queue.read_only(path)


def _policies(rows: Sequence[ShadowRow], versions: list[Version]) -> dict[str, TripPolicy]:
    """The trip policy of every version in ``rows`` (candidates and production), from the known versions' cards."""
    by_id = {v.id: v for v in versions}
    wanted = sorted({r.version for r in rows} | {r.production_version for r in rows})
    missing = [v for v in wanted if v not in by_id]
    if missing:
        raise ConfigError(f"version(s) {', '.join(missing)} of the shadow scores are not among the known artifact "
                          f"sets ({', '.join(by_id) or 'none'})", hint="`sentinel models add` the set back")
    return {v: card_policy(by_id[v]) for v in wanted}


def shadow_report(layout: ArtifactLayout, config: SentinelConfig, *, market: str | None = None,
                  version: str | None = None, db: Path | None = None) -> dict[str, Any]:
    """``sentinel shadow report``: per market, per candidate version, what it would have done (module doc)."""
    versions = known_versions(config, layout)
    wanted = find_version(versions, version).id if version else None
    queue = _queue(layout, config, db)
    try:
        markets = queue.shadow_markets()
    finally:
        queue.close()
    if market is not None:
        markets = [m for m in markets if m == market]
    report: dict[str, Any] = {"markets": {}}
    for name in markets:
        rows = _rows(queue.path, name, wanted)
        policies = _policies(rows, versions)
        by_version: dict[str, list[ShadowRow]] = {}
        for row in rows:
            by_version.setdefault(row.version, []).append(row)
        report["markets"][name] = [candidate_report(r, policies, config.model.horizon)
                                   for _, r in sorted(by_version.items())]
    return report


def _rows(path: Path, market: str, version: str | None) -> list[ShadowRow]:
    view = Queue.read_only(path, market=market)
    try:
        return view.shadow_scores(version)
    finally:
        view.close()


def shadow_checks(report: dict[str, Any] | None, settings: LifecycleConfig) -> list[Check]:
    """The shadow criteria on one candidate's report (None: it has no shadow scores)."""
    need = settings.min_shadow_windows
    if report is None:
        return [Check("shadow_windows", passed=False, detail=f"no window shadow-scored (at least {need} needed)"),
                Check("no_extra_trips", passed=False, detail="no shadow period to judge")]
    n = int(report["windows"])
    period = f"{report['first_window_end']} to {report['last_window_end']}"
    extra = int(report["extra_trips"])
    trips = report["trips"]
    return [
        Check("shadow_windows", n >= need, f"{n} windows scored ({period}), at least {need} needed"),
        Check("no_extra_trips", extra == 0,
              f"{extra} extra trip(s), with no production trip within {report['horizon_windows']} windows "
              f"(candidate trips {len(trips['candidate'])}, production's {len(trips['production'])})"),
    ]


def promotion_check(layout: ArtifactLayout, config: SentinelConfig, version: str, *, market: str | None = None,
                    db: Path | None = None) -> dict[str, Any]:
    """``sentinel shadow check``: the promotion criteria of candidate ``version`` against the market's production
    (the version in its newest shadow row: what the relay proved with): the evaluation checks and the shadow
    checks, with the verdict."""
    from sentinel.markets import pick

    versions = known_versions(config, layout)
    candidate = find_version(versions, version)
    queue = _queue(layout, config, db)
    try:
        names = queue.shadow_markets()
    finally:
        queue.close()
    by_market = {m: rows for m in names if (rows := _rows(queue.path, m, candidate.id))}
    if not by_market:
        checks = [Check("production", passed=False,
                        detail=f"no shadow scores of {candidate.id} in {queue.path}: production is the version the "
                               "relay recorded beside them (set lifecycle.shadow)"),
                  *shadow_checks(None, config.lifecycle)]
        return _verdict(candidate.id, None, market, checks)
    name = pick(list(by_market), market, f"the shadow scores of {candidate.id}")
    rows = by_market[name]
    newest = max(rows, key=lambda r: r.window_id)
    production = find_version(versions, newest.production_version)  # the relay's at its newest shadow row
    checks = evaluation_checks(candidate.evaluation, production_evaluation(candidate, production), config.lifecycle)
    report = candidate_report(rows, _policies(rows, versions), config.model.horizon)
    return _verdict(candidate.id, newest.production_version, name, checks + shadow_checks(report, config.lifecycle))


def production_evaluation(candidate: Version, production: Version) -> dict[str, Any] | None:
    """Production's figures on the candidate's episodes: its own ``models/evaluation.json`` when it is on the same
    ones; else the figures ``sentinel retrain`` measured for this very production model on the candidate's
    episodes (the candidate's ``models/retrain.json``); else its own (the check then says they differ)."""
    own = production.evaluation
    if own is not None and same_episodes(own, candidate.evaluation):
        return own
    import json

    try:
        report = json.loads((candidate.layout.models_dir / "retrain.json").read_text(encoding="utf-8"))
        measured = report["production"]
    except (OSError, ValueError, KeyError, TypeError):
        return own
    if not isinstance(measured, dict) or measured.get("id") != production.id:
        return own
    fresh = measured.get("fresh")
    return fresh if isinstance(fresh, dict) and same_episodes(fresh, candidate.evaluation) else own


def _verdict(candidate: str, production: str | None, market: str | None, checks: list[Check]) -> dict[str, Any]:
    return {"candidate": candidate, "production": production, "market": market,
            "checks": [c.to_dict() for c in checks], "passed": passed(checks)}

