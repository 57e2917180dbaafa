"""``sentinel retrain``: a candidate model from the latest real feed, kept only if it beats production.

One command a timer runs (docs/lifecycle.md). For a market (its production
is its configured artifact set, the project's own by default):

1. scenarios calibrated to the real feed ``--like`` and a model trained on
   them with the set's settings, as ``sentinel onboard`` does, in a
   temporary directory under ``versions/``;
2. production and the candidate on the same fresh episodes (one seed, one
   count, calibrated to the feed; both float-scored) and on the feed itself
   taken as healthy;
3. the promotion criteria (:func:`sentinel.lifecycle.promotion.evaluation_checks`)
   and the real-feed check: the candidate trips on the feed no more often
   than production.

Only when every check holds is the candidate added as ``versions/<id>/``
(its ``models/evaluation.json`` and ``models/retrain.json``, this report);
otherwise nothing is written. Its circuit is not built here (minutes): that
is ``sentinel models build`` or ``sentinel upgrade propose``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, atomic_write_text
from sentinel.config import LifecycleConfig, SentinelConfig
from sentinel.errors import ModelError
from sentinel.lifecycle.promotion import Check, evaluation_checks, passed
from sentinel.lifecycle.registry import fresh_defaults
from sentinel.model.onboard import Progress
from sentinel.versions import VERSIONS_DIR, Version, add_version, read_version

#: The report's name in the candidate's ``models/``.
REPORT = "retrain.json"


@dataclass(frozen=True)
class RetrainResult:
    """The report (every figure and check) and, when every check held, where the candidate was written."""

    report: dict[str, Any]
    checks: list[Check]
    written: Path | None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def real_feed_check(candidate: dict[str, Any], production: dict[str, Any]) -> Check:
    """The candidate trips on the real feed (taken as healthy: every trip is false) no more often than production."""
    mine, theirs = (int(doc["total"]["false_trips"]["count"]) for doc in (candidate, production))
    windows = int(candidate["total"]["windows"])
    return Check("real_feed_trips", mine <= theirs,
                 f"{mine} trips over {windows:,} windows of the real feed vs production {theirs}")


@dataclass(frozen=True)
class Trial:
    """A candidate trained in a temporary directory, and both its and production's figures on the same inputs."""

    work: ArtifactLayout  #: the candidate's temporary project root (removed when the trial ends)
    market: str
    real: Path
    production: Version
    candidate: Version
    calibration: dict[str, Any]  #: the scenarios it was trained on
    model: dict[str, Any]  #: its trip policy and training time
    production_fresh: dict[str, Any]
    candidate_fresh: dict[str, Any]
    production_real: dict[str, Any]
    candidate_real: dict[str, Any]
    seconds: float


@contextmanager
def trial(layout: ArtifactLayout, source: ArtifactLayout, market: str, config: SentinelConfig, real: Path, *,
          episodes: int | None = None, fresh: int | None = None, seed: int | None = None,
          progress: Progress | None = None) -> Iterator[Trial]:
    """Steps 1-2: train a candidate on scenarios calibrated to ``real`` in a temporary directory under
    ``versions/`` and measure it and ``market``'s production (the set at ``source``) on the same inputs; the
    directory is removed when the ``with`` block ends.

    ``config``: the production set's settings (its own ``sentinel.toml``, else the project's:
    :func:`sentinel.lifecycle.registry.set_config`). ``episodes``: training episodes (default
    ``model.data_episodes``); ``fresh``/``seed``: the fresh episodes (default: the project's own evaluation's,
    else ``evaluate --fresh``'s).
    """
    from sentinel.data.io import read_market_csv
    from sentinel.model.onboard import train_like
    from sentinel.model.pipeline import run_fresh_evaluation, run_real_evaluation

    say = progress or (lambda step, detail: None)
    start = time.perf_counter()
    read_market_csv(real, config.data)  # a bad feed fails here, by row and column, before any work
    production = read_version(source, "project" if source.root == layout.root else f"market {market}")
    n = config.model.data_episodes if episodes is None else episodes
    if n < 1:
        raise ModelError(f"--episodes must be >= 1, got {n}")
    defaults = fresh_defaults(layout)
    fresh = defaults.get("episodes") if fresh is None else fresh
    seed = defaults.get("seed") if seed is None else seed
    versions = layout.root / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".retrain-", dir=versions))  # hidden: known_versions skips it
    try:
        candidate = ArtifactLayout(work)
        settings = source.root / "sentinel.toml"
        scenarios, generated, trained = train_like(
            candidate, settings if settings.is_file() else layout.root / "sentinel.toml", config, real, n, say)
        say("evaluate", f"production {production.id} on fresh episodes calibrated to {real.name}")
        prod_fresh = run_fresh_evaluation(source, config, fresh, seed, None, progress, like=real)
        say("evaluate", "the candidate on the same episodes")
        cand_fresh = run_fresh_evaluation(candidate, config, prod_fresh["episodes"], prod_fresh["seed"], None,
                                          progress, like=real)
        say("evaluate", f"both on {real} as a healthy feed: every trip is a false one")
        prod_real = run_real_evaluation(source, config, [real])
        cand_real = run_real_evaluation(candidate, config, [real])
        yield Trial(
            work=candidate, market=market, real=real, production=production,
            candidate=read_version(candidate, "candidate"),
            calibration={"episodes": n, "seed": generated.seed, "scenarios": f"data/{scenarios.name}",
                         "sha256": generated.sha256, "statistics": generated.calibration},
            model={"trip_policy": trained.card["trip_policy"], "train_seconds": round(trained.seconds, 1)},
            production_fresh=prod_fresh, candidate_fresh=cand_fresh, production_real=prod_real,
            candidate_real=cand_real, seconds=time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def decide(t: Trial, layout: ArtifactLayout, settings: LifecycleConfig) -> RetrainResult:
    """Step 3: the checks, and the candidate added as ``versions/<id>/`` (with its evaluation and this report)
    only when every one holds; nothing is written otherwise."""
    versions = layout.root / VERSIONS_DIR
    new, production = t.candidate, t.production
    target = versions / new.id
    same = ("is production's model" if new.id == production.id
            else f"is already a version ({target})" if target.exists() else "is a new model")
    checks = [Check("new_model", same == "is a new model", f"candidate {new.id} {same}")]
    checks += evaluation_checks(t.candidate_fresh, t.production_fresh, settings)
    checks.append(real_feed_check(t.candidate_real, t.production_real))
    ok = passed(checks)
    report: dict[str, Any] = {
        "real": str(t.real), "market": t.market,
        "production": {"id": production.id, "path": str(production.layout.root), "fresh": t.production_fresh,
                       "real_feed": t.production_real},
        "candidate": {"id": new.id, "path": str(target) if ok else None, "onnx_sha256": new.onnx_sha256,
                      "calibration": t.calibration, "model": t.model, "fresh": t.candidate_fresh,
                      "real_feed": t.candidate_real},
        "checks": [c.to_dict() for c in checks],
        "passed": ok,
        "lifecycle": {"recall_tolerance": settings.recall_tolerance,
                      "lead_tolerance_rows": settings.lead_tolerance_rows},
        "elapsed_seconds": round(t.seconds, 1),
    }
    written = None
    if ok:
        atomic_write_text(t.work.evaluation, json.dumps(t.candidate_fresh, indent=1, sort_keys=True) + "\n")
        atomic_write_text(t.work.models_dir / REPORT, json.dumps(report, indent=1, sort_keys=True) + "\n")
        written = add_version(layout, t.work.root, circuits=False).layout.root
    return RetrainResult(report, checks, written)


def retrain(layout: ArtifactLayout, config: SentinelConfig, real: Path, *, market: str | None = None,
            episodes: int | None = None, fresh: int | None = None, seed: int | None = None,
            overrides: dict[str, Any] | None = None, progress: Progress | None = None) -> RetrainResult:
    """:func:`trial` then :func:`decide` for ``market`` (the only or default one when None): ``config`` is the
    project's (the market, the promotion criteria); training and evaluation use the production set's settings
    (its ``sentinel.toml``, else the project's, with ``overrides``)."""
    from sentinel.lifecycle.registry import set_config
    from sentinel.markets import market as find_market

    chosen = find_market(config, layout, market)
    settings = set_config(chosen.layout.root, layout.root, overrides)
    with trial(layout, chosen.layout, chosen.name, settings, real, episodes=episodes, fresh=fresh, seed=seed,
               progress=progress) as t:
        return decide(t, layout, config.lifecycle)
