"""Why a model trips on a healthy feed of another market: the feed moved toward the model's market. Prints JSON.

    python scripts/feed_shift.py FEED.csv --root [LABEL=]PROJECT [--root ...]

A model standardises its inputs with its training market's statistics, so on
a feed whose healthy BLR sits elsewhere, or whose depth is in other units,
its scores say little. This runs each project's saved model under its card's
trip policy (every trip a false trip, as ``sentinel evaluate --real``) over
FEED as it is and over three shifted copies:

* ``blr_at_profile``: each row's BLR times (profile BLR / the feed's healthy
  median BLR), the depth (sqrt(buy * sell)) kept;
* ``depth_at_profile``: both sides times (profile depth / the feed's healthy
  depth), the BLR kept;
* ``both``: the two together.

The profile is the default scenario profile (``MarketProfile()``), the market
the committed model is trained around. A shift changes levels only; the
feed's dynamics (noise, memory, events) stay its own. A diagnostic, not a
calibration: a market is served by a model trained ``--like`` its feed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.artifacts import ArtifactLayout
from sentinel.data import schema
from sentinel.data.calibrate import healthy_stats
from sentinel.data.io import read_market_csv
from sentinel.data.synthetic import MarketProfile
from sentinel.data.validate import MarketData
from sentinel.data.windows import cut_windows
from sentinel.model.evaluate import real_feed_result, score_summary
from sentinel.model.pipeline import load_card, load_trained_model
from sentinel.model.policy import TripPolicy
from sentinel.model.train import KerasDetector


def shifted(data: MarketData, blr_factor: float, depth_factor: float) -> MarketData:
    """``data`` with each row's BLR x ``blr_factor`` and depth x ``depth_factor`` (buy and sell moved to match)."""
    frame = data.frame.copy()
    buy = frame[schema.BUY_VOLUME].to_numpy() * depth_factor * math.sqrt(blr_factor)
    sell = frame[schema.SELL_VOLUME].to_numpy() * depth_factor / math.sqrt(blr_factor)
    frame[schema.BUY_VOLUME], frame[schema.SELL_VOLUME], frame[schema.BLR] = buy, sell, buy / sell
    return dataclasses.replace(data, frame=frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("feed", type=Path)
    parser.add_argument("--root", action="append", required=True,
                        help="[LABEL=]DIR: a project with a trained model (LABEL names it in the JSON)")
    args = parser.parse_args()

    feed = read_market_csv(args.feed)
    stats, profile = healthy_stats(feed), MarketProfile()
    blr_factor, depth_factor = profile.blr / stats.blr, profile.depth / stats.depth
    feeds = {
        "as_is": feed,
        "blr_at_profile": shifted(feed, blr_factor, 1.0),
        "depth_at_profile": shifted(feed, 1.0, depth_factor),
        "both": shifted(feed, blr_factor, depth_factor),
    }
    models: dict[str, Any] = {}
    for spec in args.root:
        label, _, path = spec.rpartition("=")
        layout = ArtifactLayout(Path(path))
        card = load_card(layout)
        policy = TripPolicy(**card["trip_policy"])
        detector = KerasDetector(load_trained_model(layout))
        runs: dict[str, Any] = {}
        for name, data in feeds.items():
            windows = cut_windows(data, int(card["config"]["window"]))
            scores = detector.score(windows.x)
            result = real_feed_result(scores, windows.end_rows, [""] * len(scores), policy)
            runs[name] = {"windows": len(scores), "trips": result["false_trips"]["count"],
                          "score": score_summary(np.asarray(scores))}
        models[label or path] = {"onnx_sha256": card["model"]["onnx_sha256"], "trip_threshold": policy.trip_threshold,
                             "config": {k: card["config"].get(k) for k in
                                        ("scenarios", "vary_market", "data_episodes", "holdout_family",
                                         "negative_weight")},
                             "runs": runs}
    print(json.dumps({
        "feed": str(args.feed),
        "feed_healthy": {"blr": stats.blr, "depth": stats.depth, "blr_log_std": stats.blr_log_std},
        "profile": {"blr": profile.blr, "depth": profile.depth, "blr_log_std": profile.blr_log_std},
        "factors": {"blr": blr_factor, "depth": depth_factor},
        "models": models,
    }, indent=2))


if __name__ == "__main__":
    main()
