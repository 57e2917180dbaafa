"""Model-stage steps as library calls: train, evaluate, score.

``run_training`` does everything ``sentinel train`` promises and writes every
artifact atomically: Keras model, ONNX (with parity), model card, plots.
``run_evaluation`` recomputes every figure from the saved model and the
regenerated data (it refuses data whose hash differs from the card's);
``run_fresh_evaluation`` and ``run_real_evaluation`` measure it at scale, on
newly generated episodes and on real healthy feeds, under the card's policies.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentinel.artifacts import ArtifactLayout, atomic_path, atomic_write_text, read_json_artifact, sha256_file
from sentinel.config import ModelConfig, SentinelConfig
from sentinel.data.io import read_market_csv, write_market_csv
from sentinel.data.synthetic import CLASSIC, CRASH_RANGES, RANGES, UNSEEN_FAMILIES, UNSEEN_REGION, family_mix, generate
from sentinel.data.validate import MarketData
from sentinel.data.windows import cut_windows, resolve_window
from sentinel.errors import ModelError
from sentinel.model.baselines import Detector, baselines
from sentinel.model.dataset import LabeledWindows, Split, episode_traces, labeled_windows, split_episodes
from sentinel.model.evaluate import (
    FRESH_SEED,
    EvalSettings,
    compare,
    eval_sets,
    evaluate_detector,
    fresh_episodes,
    fresh_evaluation,
    real_feed_result,
    score_summary,
    trip_rate,
)
from sentinel.model.export import ExportResult, export_onnx
from sentinel.model.network import SCORE_SPAN, KerasModel, model_activation_bound
from sentinel.model.policy import TripPolicy

CARD_VERSION = 1
LIBRARIES = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "pandas", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the model."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name if name != "tensorflow" else "tensorflow-cpu")
        except PackageNotFoundError:
            try:
                out[name] = version(name)
            except PackageNotFoundError:
                out[name] = "missing"
    return out


@dataclass(frozen=True)
class TrainingData:
    """The labelled scenarios a model is trained and evaluated on."""

    market: MarketData
    path: Path
    sha256: str
    generated: bool


def default_training_path(layout: ArtifactLayout, cfg: ModelConfig) -> Path:
    """Where the default training scenarios of ``cfg`` live (the ``classic`` space keeps its old name)."""
    path = layout.training_data(cfg.data_seed, cfg.data_episodes)
    if cfg.scenarios == CLASSIC:
        return path
    varied = "-varied" if cfg.varied_markets else ""
    return path.with_name(f"{path.stem}-{cfg.scenarios}{varied}{path.suffix}")


def training_data(layout: ArtifactLayout, config: SentinelConfig, path: Path | None = None) -> TrainingData:
    """Read ``path``, or the default scenarios (generated first if missing)."""
    cfg = config.model
    generated = False
    if path is None:
        path = default_training_path(layout, cfg)
        if not path.exists():
            write_market_csv(generate(cfg.data_episodes, cfg.data_seed, scenarios=cfg.scenarios,
                                      vary_market=cfg.varied_markets), path)
            generated = True
    market = read_market_csv(path, config.data)
    return TrainingData(market, Path(path), sha256_file(path), generated)


def _settings(config: SentinelConfig) -> EvalSettings:
    c = config.model
    return EvalSettings(c.window, c.horizon, c.trip_after, c.reset_after, c.reset_ratio, c.false_trip_budget)


def _split(data: TrainingData, config: SentinelConfig) -> Split:
    c = config.model
    return split_episodes(data.market, c.seed, c.holdout_family or None, c.val_fraction, c.test_fraction)


def _evaluate(data: TrainingData, split: Split, model: KerasModel, config: SentinelConfig) -> dict[str, Any]:
    from sentinel.model.train import KerasDetector

    settings = _settings(config)
    sets = eval_sets(data.market, split, settings)
    train = labeled_windows(data.market, split.train, settings.window, settings.horizon)
    detectors = [KerasDetector(model), *baselines(config.model.seed)]
    results: dict[str, Any] = {}
    for detector in detectors:
        detector.fit(train)
        results[detector.name] = evaluate_detector(data.market, sets, detector, settings)
    return {
        "detectors": results,
        "verdict": compare(results, "lstm", settings.false_trip_budget),
        "split": split.to_dict(),
        "horizon_rows": settings.horizon,
        "false_trip_budget_per_10k": settings.false_trip_budget,
    }


def _risk_plot(data: TrainingData, split: Split, model: KerasModel, policy: TripPolicy, config: SentinelConfig,
               out: Path) -> None:
    from sentinel.data import schema
    from sentinel.model.labels import row_labels
    from sentinel.model.plots import plot_risk
    from sentinel.model.train import KerasDetector

    c = config.model
    frame = data.market.frame.drop_duplicates(schema.EPISODE)
    family_of = dict(zip(frame[schema.EPISODE], frame[schema.FAMILY], strict=True))
    chosen: list[int] = []
    for family in schema.FAMILIES:  # one test episode per family, then one held-out episode
        chosen.extend([e for e in split.test if family_of[e] == family][:1])
    chosen.extend(split.holdout[:1])
    windows = labeled_windows(data.market, tuple(chosen), c.window, c.horizon)
    scores = KerasDetector(model).score(windows.x)
    traces = episode_traces(data.market, windows, scores)
    labels = row_labels(data.market, c.horizon)
    plot_risk(traces, [labels[t.rows] for t in traces], policy, c.horizon, out,
              "LSTM risk: one test episode per family"
              + (f"; the {split.holdout_family} episode is from the held-out family" if split.holdout else ""))


def _architecture(c: ModelConfig, *, warm_started: bool) -> str:
    """The model card's one-line architecture of model config ``c``."""
    head = f"AveragePooling({c.pooling}) -> WindowFeatures(clip {c.feature_clip:g}; first step as baseline) -> "
    if c.activations == "smooth":
        return head + f"LSTM({c.units}, unroll) -> Dense(1, sigmoid)"
    warm = "; fine-tuned from the smooth model" if warm_started else ""
    return (head + f"LSTM({c.units}, hard_sigmoid/hard_tanh, unroll) -> Dense(1) -> "
            f"clip(1/2 + logit/{2 * SCORE_SPAN:g}, 0, 1)" + warm)


@dataclass(frozen=True)
class TrainingReport:
    """What ``sentinel train`` produced."""

    card: dict[str, Any]
    seconds: float
    data_generated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"card": self.card, "train_seconds": self.seconds, "data_generated": self.data_generated}


def run_training(
    layout: ArtifactLayout,
    config: SentinelConfig,
    data_path: Path | None = None,
    progress: Callable[[str, int, int, dict[str, float]], None] | None = None,
) -> TrainingReport:
    """Train, evaluate beside the baselines, export with parity, write the card and plots."""
    from sentinel.model.plots import plot_history
    from sentinel.model.train import train_lstm

    data = training_data(layout, config, data_path)
    split = _split(data, config)
    result = train_lstm(data.market, split, config.model, progress)
    evaluation = _evaluate(data, split, result.model, config)
    policy = TripPolicy(**evaluation["detectors"]["lstm"]["policy"])

    c = config.model
    test = labeled_windows(data.market, split.test, c.window, c.horizon)
    layout.ensure(layout.models_dir, layout.plots_dir)
    export = export_onnx(result.model, c.window, layout.onnx_model, test.x)
    with atomic_path(layout.keras_model) as tmp:
        result.model.save(tmp)
    plot_history(result.history, result.best_epoch, layout.history_plot)
    _risk_plot(data, split, result.model, policy, config, layout.risk_plot)

    card = {
        "card_version": CARD_VERSION,
        "model": {
            "architecture": _architecture(c, warm_started=result.warm_start is not None),
            "input": {"shape": [1, c.window, 4], "features": ["blr", "buy_volume", "sell_volume", "mid_price"],
                      "dtype": "float32", "onnx_input": "window"},
            "output": "crash risk in [0, 1]",
            "parameters": result.parameters,
            # Largest lookup-table input any window can produce, from the weights (the circuit's
            # sigmoid runs through its tanh table): sizes that table. A hard model has no table.
            "activation_bound": (model_activation_bound(result.model, c.feature_clip)
                                 if c.feature_clip > 0 and c.activations == "smooth" else None),
            "normalisation": result.normalisation.to_dict(),
            "keras_sha256": sha256_file(layout.keras_model),
            "onnx_sha256": sha256_file(layout.onnx_model),
        },
        "config": asdict(c),
        "seeds": {"data": c.data_seed, "split_and_training": c.seed},
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),  # `sentinel models list` shows it
        "data": {
            "path": data.path.name, "sha256": data.sha256,
            "rows": len(data.market), "episodes": int(data.market.frame["episode"].nunique()),
        },
        "label": f"positive if a crash begins within the next {c.horizon} rows or the window is inside one",
        "training": {
            "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "train_windows": result.train_windows, "val_windows": result.val_windows,
            "positive_fraction": result.positive_fraction,
            "class_weight": {str(k): v for k, v in result.class_weight.items()},
            # The smooth model a hard one started from: its own epochs, best epoch and validation loss.
            "warm_start": result.warm_start,
        },
        "trip_policy": policy.to_dict(),
        "export": {k: v for k, v in export.to_dict().items() if k != "path"},
        "evaluation": evaluation,
        "versions": library_versions(),
    }
    atomic_write_text(layout.model_card, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return TrainingReport(card=card, seconds=result.seconds, data_generated=data.generated)


def load_card(layout: ArtifactLayout) -> dict[str, Any]:
    """The model card, or a ``ModelError`` that says to train first."""
    return read_json_artifact(layout.model_card, "model card", "sentinel train", ModelError)


def config_from_card(card: dict[str, Any], config: SentinelConfig) -> SentinelConfig:
    """``config`` with the model section the card was trained with."""
    from dataclasses import replace

    # a card from before model.scenarios existed was trained on the classic scenarios
    return replace(config, model=ModelConfig(**{"scenarios": CLASSIC, **card["config"]}))


def load_trained_model(layout: ArtifactLayout) -> KerasModel:
    """The saved Keras model."""
    from sentinel.model.network import load_model

    if not layout.keras_model.exists():
        raise ModelError(f"{layout.keras_model}: no trained model; run `sentinel train` first")
    return load_model(layout.keras_model)


def card_test_windows(layout: ArtifactLayout, config: SentinelConfig, data_path: Path | None = None) -> LabeledWindows:
    """The held-out test windows (``LabeledWindows``) of the split the saved model was trained with."""
    card = load_card(layout)
    config = config_from_card(card, config)
    data = training_data(layout, config, data_path)
    c = config.model
    return labeled_windows(data.market, _split(data, config).test, c.window, c.horizon)


def _card_data(layout: ArtifactLayout, config: SentinelConfig, card: dict[str, Any],
               data_path: Path | None = None) -> TrainingData:
    """The card's training data (``data_path`` instead, if given): the file the card names under ``data/`` when it
    is there (scenarios calibrated to a market, ``sentinel onboard``), else the regenerated default; either must
    match the card's hash."""
    if data_path is None:
        named = layout.data_dir / str(card["data"]["path"])
        if named.is_file() and named != default_training_path(layout, config.model):
            data_path = named
            if sha256_file(named) != card["data"]["sha256"]:
                raise ModelError(f"{named}: sha256 differs from the model card's training data; retrain with "
                                 "`sentinel train`")
    data = training_data(layout, config, data_path)
    if data_path is None and data.sha256 != card["data"]["sha256"]:
        raise ModelError(
            f"{data.path}: sha256 {data.sha256[:12]} differs from the model card's {card['data']['sha256'][:12]} "
            "(the generator changed?); retrain with `sentinel train`"
        )
    return data


def run_evaluation(layout: ArtifactLayout, config: SentinelConfig, data_path: Path | None = None) -> dict[str, Any]:
    """Recompute every metric of the saved model and the baselines (nothing read from the card but its config)."""
    card = load_card(layout)
    config = config_from_card(card, config)
    data = _card_data(layout, config, card, data_path)
    model = load_trained_model(layout)
    return _evaluate(data, _split(data, config), model, config)


def _card_policy(card: dict[str, Any], name: str) -> TripPolicy:
    """The trip policy the card gives detector ``name`` (the model's: the card's ``trip_policy``)."""
    if name == "lstm":
        return TripPolicy(**card["trip_policy"])
    try:
        return TripPolicy(**card["evaluation"]["detectors"][name]["policy"])
    except (KeyError, TypeError) as exc:
        raise ModelError(f"model card: no trip policy for the baseline '{name}'; retrain with `sentinel train`") \
            from exc


def run_fresh_evaluation(
    layout: ArtifactLayout,
    config: SentinelConfig,
    episodes: int | None = None,
    seed: int | None = None,
    families: Sequence[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    like: Path | None = None,
    unseen_episodes: int | None = None,
    *,
    vary_market: bool = False,
) -> dict[str, Any]:
    """The saved model and every baseline on ``episodes`` newly generated episodes, under the card's policies.

    The episodes come from the ``ranges`` scenario space, whatever the model
    was trained on: the families' training region (hard negatives included),
    and apart, ``unseen_episodes`` of its unseen region (the slowest drains,
    the fastest flashes; never drawn for training), reported as their own
    recall. Default ``unseen_episodes``: enough for every unseen family as
    for ``episodes``; 0 skips them.

    With ``like`` (a real market-depth CSV), the episodes are calibrated to its healthy statistics as
    ``data generate --like`` calibrates them. With ``vary_market`` each episode's healthy market is drawn
    around that profile (:data:`~sentinel.data.synthetic.MARKET_RANGES`), as ``model.vary_market`` draws
    training episodes; by default every episode is the profile's own market.

    Default ``episodes``: :func:`~sentinel.model.evaluate.fresh_episodes` of
    the mix; default ``seed``: :data:`~sentinel.model.evaluate.FRESH_SEED`.
    Baselines that learn (logistic regression) are fitted on the card's
    training split exactly as ``sentinel train`` fitted them; nothing is
    re-tuned. The float Keras model scores, as ``sentinel evaluate`` does.
    """
    from datetime import UTC, datetime

    from sentinel.model.train import KerasDetector

    start = time.perf_counter()
    mix = family_mix(families, RANGES)
    n = fresh_episodes(families) if episodes is None else episodes
    if n < 1:
        raise ModelError(f"--fresh: the number of episodes must be >= 1, got {n}")
    unseen_families = [f for f in UNSEEN_FAMILIES if f in mix]
    n_unseen = (fresh_episodes(unseen_families) if unseen_families else 0) if unseen_episodes is None \
        else unseen_episodes
    if n_unseen < 0:
        raise ModelError(f"--unseen: the number of episodes must be >= 0, got {n_unseen}")
    if n_unseen and not unseen_families:
        raise ModelError(f"--unseen: none of the families has an unseen region ({', '.join(UNSEEN_FAMILIES)} do)")
    card = load_card(layout)
    config = config_from_card(card, config)
    c = config.model
    seed = FRESH_SEED if seed is None else seed
    if seed == c.data_seed:
        raise ModelError(f"--seed {seed} is the training data's seed (model.data_seed): fresh episodes need another")
    model = load_trained_model(layout)
    data = _card_data(layout, config, card)
    train = labeled_windows(data.market, _split(data, config).train, c.window, c.horizon)
    detectors: list[tuple[Detector, TripPolicy]] = []
    for detector in (KerasDetector(model), *baselines(c.seed)):
        detector.fit(train)
        detectors.append((detector, _card_policy(card, detector.name)))
    profile = None
    if like is not None:
        from sentinel.data.calibrate import healthy_stats, profile_from_stats

        profile = profile_from_stats(healthy_stats(read_market_csv(like, config.data)))
    fresh = generate(n, seed, list(mix) if families else None, profile=profile, scenarios=RANGES,
                     vary_market=vary_market)
    unseen = (generate(n_unseen, seed, unseen_families, profile=profile, scenarios=RANGES, region=UNSEEN_REGION,
                       vary_market=vary_market) if n_unseen else None)
    if progress is not None:
        progress("evaluate", f"generated {n:,} episodes ({len(fresh):,} rows) and {n_unseen:,} of the unseen region "
                             f"with seed {seed}")
    result = fresh_evaluation(fresh, detectors, c.window, c.horizon, c.false_trip_budget, progress, unseen)
    if "unseen_region" in result:  # what the region is: each family's crash durations (onset to bottom, rows)
        result["unseen_region"]["crash_rows"] = {f: list(CRASH_RANGES[f].unseen_rows or ()) for f in unseen_families}
    return {
        "kind": "fresh",
        "seed": seed,
        "calibrated_to": None if like is None else str(like),
        "scenarios": RANGES,
        "vary_market": vary_market,
        "families": list(mix),
        "date": datetime.now(UTC).date().isoformat(),
        "model": {
            "keras_sha256": card["model"]["keras_sha256"], "onnx_sha256": card["model"]["onnx_sha256"],
            "scored_by": "keras (float)", "training_data_seed": c.data_seed,
            "training_episodes": card["data"]["episodes"], "holdout_family": c.holdout_family or None,
            "training_scenarios": c.scenarios, "training_vary_market": c.varied_markets,
        },
        "horizon_rows": c.horizon,
        "false_trip_budget_per_10k": c.false_trip_budget,
        "cpus": os.cpu_count(),
        "intervals": {"recall": "Wilson score, 95 %",
                      "false_trips": "exact Poisson (Garwood), 95 %, on the count over healthy rows"},
        **result,
        "elapsed_seconds": round(time.perf_counter() - start, 1),
    }


def run_real_evaluation(layout: ArtifactLayout, config: SentinelConfig, paths: Sequence[Path]) -> dict[str, Any]:
    """The saved model and the card's trip policy over unlabelled real feeds taken as healthy: every trip is false.

    Every file is read and validated before the model loads, so a bad file
    fails fast. Windows are every complete window of each feed, in time order.
    """
    from datetime import UTC, datetime

    from sentinel.model.train import KerasDetector

    start = time.perf_counter()
    if not paths:
        raise ModelError("--real: name at least one market-depth CSV")
    markets = [read_market_csv(path, config.data) for path in paths]
    card = load_card(layout)
    window = int(card["config"]["window"])
    policy = TripPolicy(**card["trip_policy"])
    detector = KerasDetector(load_trained_model(layout))
    files: list[dict[str, Any]] = []
    all_scores: list[np.ndarray] = []
    for path, market in zip(paths, markets, strict=True):
        windows = cut_windows(market, window)  # none when the feed is shorter than a window
        scores = detector.score(windows.x)
        times = [t.isoformat() for t in pd.DatetimeIndex(market.frame["timestamp"])[windows.end_rows]]
        files.append({"file": str(path), "rows": len(market),
                      **real_feed_result(scores, windows.end_rows, times, policy)})
        all_scores.append(scores)
    scores = np.concatenate(all_scores)
    trips = sum(f["false_trips"]["count"] for f in files)
    return {
        "kind": "real",
        "date": datetime.now(UTC).date().isoformat(),
        "model": {"keras_sha256": card["model"]["keras_sha256"], "onnx_sha256": card["model"]["onnx_sha256"],
                  "scored_by": "keras (float)"},
        "policy": policy.to_dict(),
        "files": files,
        "total": {"windows": len(scores), "false_trips": trip_rate(trips, len(scores)), "score": score_summary(scores)},
        "elapsed_seconds": round(time.perf_counter() - start, 1),
    }


def run_export(layout: ArtifactLayout, config: SentinelConfig, data_path: Path | None = None) -> ExportResult:
    """Re-export the saved model to ONNX with parity over the card's test windows; updates the card."""
    card = load_card(layout)
    test = card_test_windows(layout, config, data_path)
    result = export_onnx(load_trained_model(layout), int(card["config"]["window"]), layout.onnx_model, test.x)
    card["model"]["onnx_sha256"] = sha256_file(layout.onnx_model)
    card["export"] = {k: v for k, v in result.to_dict().items() if k != "path"}
    atomic_write_text(layout.model_card, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return result


def score_windows(layout: ArtifactLayout, config: SentinelConfig, market: MarketData,
                  specs: list[str], *, onnx: bool = False) -> list[dict[str, Any]]:
    """Float-model scores (no proof) of the windows named by ``specs``: the Keras model's, or with ``onnx`` the
    ONNX model's (the one the circuit proves and the relay shadow-scores; all a version needs to hold)."""
    card = load_card(layout)
    window = int(card["config"]["window"])
    policy = card["trip_policy"]
    ends = np.array([resolve_window(market, spec, window) for spec in specs], dtype=np.int64)
    windows = cut_windows(market, window, ends)
    if onnx:
        from sentinel.model.export import onnx_scores

        scores = onnx_scores(layout.onnx_model, windows.x)
    else:
        from sentinel.model.train import KerasDetector

        scores = KerasDetector(load_trained_model(layout)).score(windows.x)
    ts = pd.DatetimeIndex(market.frame["timestamp"])
    return [
        {
            "window": spec, "end_row": int(end) + 1, "window_end": ts[int(end)].isoformat(),
            "score": float(s), "above_trip_threshold": bool(s >= policy["trip_threshold"]),
        }
        for spec, end, s in zip(specs, ends, scores, strict=True)
    ]
