"""``sentinel onboard``: a real feed -> calibrated scenarios -> a trained model -> fresh and real-feed figures, in a
new project; on the committed sample feed with the tiny model's settings (real TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_market_depth.csv"


def test_onboarding_the_sample_feed_makes_a_project_that_judges_its_own_model(run_cli, tiny_project: Path,
                                                                              tmp_path: Path):
    out = tmp_path / "market"
    code, stdout, err = run_cli("--root", tiny_project, "onboard", SAMPLE, "--out", out, "--episodes", "40",
                                "--fresh", "40", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report == json.loads((out / "onboarding.json").read_text())
    # 1. scenarios calibrated to the feed, kept in the project under the name its card records
    cal = report["calibration"]
    assert cal["episodes"] == 40 and cal["statistics"]
    assert all({"reference", "generated", "rel_error", "ok"} <= set(row) for row in cal["statistics"].values())
    card = json.loads((out / "models" / "model_card.json").read_text())
    assert f"data/{card['data']['path']}" == cal["scenarios"] and (out / cal["scenarios"]).is_file()
    # 2. the model, its ONNX and card in the new project, with the source project's settings (the tiny ones)
    assert (out / "models" / "sentinel.onnx").is_file() and card["config"]["units"] == 4
    assert (out / "sentinel.toml").read_text() == (tiny_project / "sentinel.toml").read_text()
    # 3. fresh episodes calibrated the same way, every detector beside the LSTM
    fresh = report["fresh"]
    assert fresh["calibrated_to"] == str(SAMPLE) and fresh["episodes"] == 40
    assert {"lstm", "logistic", "seed_rule"} <= set(fresh["detectors"])
    lstm = fresh["detectors"]["lstm"]
    assert lstm["all_crashes"]["events"] > 0 and 0.0 <= lstm["all_crashes"]["recall"] <= 1.0
    # 4. the feed itself, every window of it, as healthy
    real = report["real_feed"]
    assert real["files"][0]["file"] == str(SAMPLE) and real["total"]["windows"] == 2000 - 49
    # the project stands on its own: its card finds the calibrated scenarios
    code, stdout, err = run_cli("--root", out, "evaluate", "--json")
    assert code == 0, err
    assert "lstm" in json.loads(stdout)["detectors"]


def test_onboarding_refuses_an_existing_project_and_a_bad_feed_leaving_nothing(run_cli, tiny_project: Path,
                                                                                tmp_path: Path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine\n")
    code, _, err = run_cli("--root", tiny_project, "onboard", SAMPLE, "--out", taken)
    assert code == 1 and err.startswith("error: ") and "not an empty directory" in err and len(err.splitlines()) == 1
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]

    lines = SAMPLE.read_text().splitlines()
    cells = lines[10].split(",")
    cells[1] = "-3"  # a negative bid-liquidity ratio on line 11
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:10], ",".join(cells), *lines[11:]]) + "\n")
    code, _, err = run_cli("--root", tiny_project, "onboard", bad, "--out", tmp_path / "new")
    assert code == 1 and "line 11" in err and "blr" in err, err
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.partial-*"))
