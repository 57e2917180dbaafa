"""``sentinel evaluate --fresh`` and ``--real`` with a real (tiny) trained model on TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.data import schema
from sentinel.data.io import read_market_csv
from sentinel.data.synthetic import RANGES, UNSEEN_REGION, generate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DETECTORS = ["lstm", "seed_rule", "blr_threshold", "logistic", "order_imbalance"]


def test_fresh_run_reports_every_detector_under_the_cards_policies(tiny_project, run_cli):
    code, out, err = run_cli("--root", tiny_project, "evaluate", "--fresh", "12", "--seed", "5", "--unseen", "6",
                             "--json")
    assert code == 0, err
    result = json.loads(out)
    card = json.loads(ArtifactLayout(tiny_project).model_card.read_text())
    assert (result["kind"], result["episodes"], result["seed"]) == ("fresh", 12, 5)
    assert result["elapsed_seconds"] > 0 and result["date"]
    assert result["model"]["onnx_sha256"] == card["model"]["onnx_sha256"]
    assert set(result["detectors"]) == set(DETECTORS)

    truth = generate(12, seed=5, scenarios=RANGES).frame.drop_duplicates(schema.EPISODE)[schema.FAMILY].value_counts()
    assert result["episodes_per_family"] == truth.to_dict()  # the episodes `data generate --scenarios ranges` writes
    unseen = generate(6, seed=5, scenarios=RANGES, region=UNSEEN_REGION).frame.drop_duplicates(schema.EPISODE)
    assert result["unseen_region"]["episodes_per_family"] == unseen[schema.FAMILY].value_counts().to_dict()
    assert result["unseen_region"]["crash_rows"] == {"drain": [151, 300], "flash": [3, 4]}
    for name, r in result["detectors"].items():
        policy = card["trip_policy"] if name == "lstm" else card["evaluation"]["detectors"][name]["policy"]
        assert r["policy"] == policy  # nothing re-tuned
        for family in result["crash_families"]:
            fam = r["families"][family]
            assert fam["events"] == truth[family]
            assert fam["recall"] == pytest.approx(fam["detected"] / fam["events"])
        assert r["all_crashes"]["detected"] == sum(f["detected"] for f in r["families"].values())
        assert r["lead_rows"]["n"] == r["all_crashes"]["detected"]
        assert r["unseen_region"]["all_crashes"]["events"] == 6  # every unseen episode is a crash

    code, out, err = run_cli("--root", tiny_project, "evaluate", "--fresh", "6", "--seed", "5", "--unseen", "4")
    assert code == 0, err
    assert out.startswith("fresh episodes: 6 (seed 5,")
    assert all(f"  {name} " in out for name in DETECTORS)
    assert "unseen region" in out
    assert "generated 6 episodes" in err and "4 of the unseen region" in err  # progress goes to stderr


def test_fresh_run_on_varied_markets_scores_the_varied_episodes(tiny_project, run_cli):
    """--vary-market: the same seed's events, each in a market drawn as training draws them: other rows, other
    scores, the same crash events."""
    runs = {}
    for flag in ((), ("--vary-market",)):
        code, out, err = run_cli("--root", tiny_project, "evaluate", "--fresh", "12", "--seed", "5", "--unseen", "0",
                                 *flag, "--json")
        assert code == 0, err
        runs[bool(flag)] = json.loads(out)
    plain, varied = runs[False], runs[True]
    assert (plain["vary_market"], varied["vary_market"]) == (False, True)
    assert varied["episodes_per_family"] == plain["episodes_per_family"]
    truth = generate(12, seed=5, scenarios=RANGES, vary_market=True).frame
    assert varied["rows"] == len(truth)
    assert varied["detectors"]["lstm"]["false_trips"]["healthy_rows"] == \
        plain["detectors"]["lstm"]["false_trips"]["healthy_rows"]  # the same phases, row for row
    lstm = {k: r["detectors"]["lstm"]["lead_rows"] for k, r in runs.items()}
    assert lstm[False] != lstm[True] or plain["detectors"]["lstm"]["drawdown_at_trip"] != \
        varied["detectors"]["lstm"]["drawdown_at_trip"]  # the markets moved the scores

    code, _, err = run_cli("--root", tiny_project, "evaluate", "--vary-market")
    assert code == 2 and "--vary-market go with --fresh" in err


def test_real_feed_run_counts_windows_and_reports_scores(tiny_project, run_cli):
    feed = ROOT / "data" / "sample_market_depth.csv"
    code, out, err = run_cli("--root", tiny_project, "evaluate", "--real", feed, "--json")
    assert code == 0, err
    result = json.loads(out)
    (file,) = result["files"]
    rows = len(read_market_csv(feed))
    assert (file["rows"], file["windows"]) == (rows, rows - 49)  # every complete window of the feed
    assert file["false_trips"]["count"] == len(file["trips"]) == result["total"]["false_trips"]["count"]
    score = file["score"]
    assert 0 <= score["min"] <= score["median"] <= score["p95"] <= score["max"] <= 1
    assert result["policy"] == json.loads(ArtifactLayout(tiny_project).model_card.read_text())["trip_policy"]
