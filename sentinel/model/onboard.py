"""``sentinel onboard REAL.csv --out DIR``: a model for a real market, from its feed to the figures that judge it.

One command for the path a market takes before Sentinel guards it, into a
new project directory (the current project's model is never touched):

1. scenarios calibrated to the feed's healthy statistics (``data generate
   --like``), under ``DIR/data/``;
2. the model trained on them with this project's settings (``train``), its
   card naming that file, so every later command in ``DIR`` finds it;
3. fresh episodes, calibrated the same way and never trained on
   (``evaluate --fresh --like``): recall per family and false trips, beside
   every baseline;
4. the feed itself, taken as healthy (``evaluate --real``): every trip is a
   false trip.

Everything is written to a temporary directory beside ``DIR`` and moved
into place at the end: a failure leaves no half-made project.
``DIR/onboarding.json`` keeps the figures of steps 1, 3 and 4. The circuit
is built from ``DIR`` as usual (``sentinel --root DIR circuit build``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, atomic_write_text
from sentinel.config import SentinelConfig
from sentinel.errors import ModelError

Progress = Callable[[str, str], None]


def scenarios_name(real: Path) -> str:
    """The calibrated scenarios' file name under ``DIR/data/``."""
    return f"scenarios-like-{real.stem}.csv"


def train_like(work: ArtifactLayout, settings: Path | None, config: SentinelConfig, real: Path, episodes: int,
               say: Progress) -> tuple[Path, Any, Any]:
    """Steps 1-2 in the new set ``work``: ``settings`` (a ``sentinel.toml``, if any) copied in, ``episodes``
    scenarios calibrated to ``real`` under its ``data/``, a model trained on them. Returns (scenarios file, the
    generation result, the training result)."""
    from sentinel.data.pipeline import generate_file
    from sentinel.model.pipeline import run_training

    if settings is not None and settings.is_file():
        shutil.copy(settings, work.root / "sentinel.toml")
    scenarios = work.data_dir / scenarios_name(real)
    say("generate", f"{episodes} episodes calibrated to {real} (seed {config.model.data_seed})")
    generated = generate_file(scenarios, episodes=episodes, seed=config.model.data_seed, like=real,
                              config=config.data, scenarios=config.model.scenarios,
                              vary_market=config.model.varied_markets)
    say("train", f"training on {scenarios.name} ({generated.rows:,} rows)")
    return scenarios, generated, run_training(work, config, scenarios)


def onboard(source: ArtifactLayout, config: SentinelConfig, real: Path, out: Path, *, episodes: int | None = None,
            fresh: int | None = None, fresh_seed: int | None = None,
            progress: Progress | None = None) -> dict[str, Any]:
    """Calibrate, train, and evaluate a model for the market of ``real`` into the new project ``out``.

    ``episodes``: training episodes (default ``model.data_episodes``); ``fresh``: fresh evaluation episodes
    (default: enough for 100 events per family). The new project starts from ``source``'s ``sentinel.toml``.
    """
    from sentinel.data.io import read_market_csv
    from sentinel.model.pipeline import run_fresh_evaluation, run_real_evaluation

    say = progress or (lambda step, detail: None)
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"--out {out}: exists and is not an empty directory; onboarding makes a new project")
    read_market_csv(real, config.data)  # a bad feed fails here, by row and column, before any work
    n = config.model.data_episodes if episodes is None else episodes
    if n < 1:
        raise ModelError(f"--episodes must be >= 1, got {n}")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        layout = ArtifactLayout(work)
        scenarios, generated, trained = train_like(layout, source.root / "sentinel.toml", config, real, n, say)
        say("evaluate", "fresh episodes calibrated to the feed, never trained on")
        fresh_result = run_fresh_evaluation(layout, config, fresh, fresh_seed, None, progress, like=real)
        say("evaluate", f"{real} as a healthy feed: every trip is a false one")
        real_result = run_real_evaluation(layout, config, [real])
        report = {
            "real": str(real),
            "project": str(out),
            "calibration": {"episodes": n, "seed": generated.seed, "scenarios": f"data/{scenarios.name}",
                            "sha256": generated.sha256, "statistics": generated.calibration,
                            "within_tolerance": all(bool(row["ok"]) for row in (generated.calibration or {}).values())},
            "model": {"card": "models/model_card.json", "keras_sha256": trained.card["model"]["keras_sha256"],
                      "onnx_sha256": trained.card["model"]["onnx_sha256"], "trip_policy": trained.card["trip_policy"],
                      "train_seconds": round(trained.seconds, 1)},
            "fresh": fresh_result,
            "real_feed": real_result,
            "elapsed_seconds": round(time.perf_counter() - start, 1),
        }
        atomic_write_text(work / "onboarding.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report
