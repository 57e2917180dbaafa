"""``sentinel retrain``: a candidate trained on scenarios calibrated to the committed sample feed, measured beside
production on the same fresh episodes and on the feed, kept under versions/ only when it beats production (real
TensorFlow, the tiny model's settings). One training serves both decisions."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.lifecycle.registry import set_config
from sentinel.lifecycle.retrain import decide, trial
from sentinel.versions import known_versions

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_market_depth.csv"

#: A production that trips at the first window of every episode and never resets: it catches no crash and trips
#: once on every feed, a bar any sane candidate clears.
STUCK = {"trip_threshold": 0.0, "reset_threshold": 0.0}


def _copy(src: Path, root: Path) -> ArtifactLayout:
    for part in ("models", "data"):
        shutil.copytree(src / part, root / part)
    shutil.copy(src / "sentinel.toml", root / "sentinel.toml")
    return ArtifactLayout(root)


def test_retrain_keeps_a_candidate_only_when_it_beats_production(tiny_project: Path, tmp_path: Path, run_cli):
    from sentinel.model.pipeline import run_fresh_evaluation, run_real_evaluation
    from sentinel.versions import read_version

    root = tmp_path / "project"
    layout = _copy(tiny_project, root)
    config = load_config(root, env={})

    with trial(layout, layout, "default", set_config(root, root), SAMPLE, episodes=40, fresh=40, seed=2718) as t:
        # both sets on the same episodes, calibrated to the feed, and on the feed itself
        assert t.production_fresh["seed"] == t.candidate_fresh["seed"] == 2718
        assert t.production_fresh["episodes"] == t.candidate_fresh["episodes"] == 40
        assert t.production_fresh["calibrated_to"] == t.candidate_fresh["calibrated_to"] == str(SAMPLE)
        assert t.production_real["total"]["windows"] == t.candidate_real["total"]["windows"] == 2000 - 49
        assert t.candidate.id != t.production.id

        # against the tiny production (trained on the default scenarios) the candidate misses crashes it catches
        strict = decide(t, layout, config.lifecycle)
        assert strict.written is None and not strict.report["passed"]
        assert {c.name for c in strict.failed} & {"recall_bleed", "recall_drain", "recall_flash", "median_lead"}
        assert {c["name"] for c in strict.report["checks"]} >= {"new_model", "same_episodes", "false_trips",
                                                                "real_feed_trips"}
        assert [v.id for v in known_versions(config, layout)] == [t.production.id]  # nothing written
        assert [p.name for p in (root / "versions").iterdir()] == [t.work.root.name]  # only the trial's own dir

        # against a production stuck tripped from the first window, the same candidate passes every check
        stuck = _copy(tiny_project, tmp_path / "stuck")
        card = json.loads(stuck.model_card.read_text())
        card["trip_policy"] = {**card["trip_policy"], **STUCK}
        stuck.model_card.write_text(json.dumps(card))
        settings = set_config(stuck.root, stuck.root)
        weak = replace(t, production=read_version(stuck, "project"),
                       production_fresh=run_fresh_evaluation(stuck, settings, 40, 2718, like=SAMPLE),
                       production_real=run_real_evaluation(stuck, settings, [SAMPLE]))
        assert weak.production_real["total"]["false_trips"]["count"] == 1
        kept = decide(weak, layout, config.lifecycle)
        assert kept.report["passed"] and not kept.failed, kept.failed
        assert kept.written == root / "versions" / t.candidate.id

        # a second decision on the same model finds it already there
        again = decide(weak, layout, config.lifecycle)
        assert again.written is None and [c.name for c in again.failed] == ["new_model"]

    assert not list((root / "versions").glob(".retrain-*"))  # the trial's directory is gone
    version = ArtifactLayout(kept.written)
    evaluation = json.loads(version.evaluation.read_text())
    assert evaluation == kept.report["candidate"]["fresh"] and evaluation["seed"] == 2718
    report = json.loads((version.models_dir / "retrain.json").read_text())
    assert report["checks"] == kept.report["checks"] and report["production"]["id"] == weak.production.id
    assert (version.root / "sentinel.toml").read_text() == (root / "sentinel.toml").read_text()
    assert (version.root / kept.report["candidate"]["calibration"]["scenarios"]).is_file()

    # the version stands on its own: listed with its figures, and evaluated again on production's episodes
    code, out, err = run_cli("--root", root, "models", "list", "--json")
    assert code == 0, err
    listed = {v["id"]: v for v in json.loads(out)["versions"]}
    assert listed[t.candidate.id]["origins"] == ["versions"] and listed[t.candidate.id]["trained_at"]
    assert listed[t.candidate.id]["evaluation"]["episodes"] == 40
    assert listed[t.production.id]["evaluation"] is None
    code, out, err = run_cli("--root", root, "models", "evaluate", t.candidate.id[:8], "--fresh", "10",
                             "--seed", "2718", "--json")
    assert code == 0, err
    assert json.loads(out)["episodes"] == 10 == json.loads(version.evaluation.read_text())["episodes"]
