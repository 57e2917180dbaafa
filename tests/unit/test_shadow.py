"""Shadow scoring: the relay's recorder (real ONNX models, a real queue) and the report and promotion check on a
synthetic queue."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.errors import ConfigError
from sentinel.lifecycle.shadow import candidate_report, promotion_check, shadow_report, trip_windows
from sentinel.model.policy import TripPolicy
from sentinel.relay.queue import Queue, ShadowRow
from sentinel.relay.server import RelayMetrics
from sentinel.relay.shadow import ShadowScorer, shadow_versions
from sentinel.versions import VERSIONS_DIR, known_versions

WINDOW = 5
PROD_POLICY: dict[str, Any] = {"trip_threshold": 0.8, "reset_threshold": 0.5, "trip_after": 3, "reset_after": 2}
CAND_POLICY: dict[str, Any] = {"trip_threshold": 0.6, "reset_threshold": 0.4, "trip_after": 2, "reset_after": 2}


def _onnx(bias: float) -> bytes:
    """A real ONNX model of the relay's input (1, W, 4): the mean of the window plus ``bias``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
         helper.make_node("Add", ["m", "b"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WINDOW, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [helper.make_tensor("b", TensorProto.FLOAT, [], [bias])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _set(root: Path, model: bytes, policy: dict[str, Any], evaluation: dict[str, Any] | None = None) -> ArtifactLayout:
    layout = ArtifactLayout(root)
    layout.ensure(layout.models_dir)
    layout.onnx_model.write_bytes(model)
    layout.model_card.write_text(json.dumps({"config": {"window": WINDOW}, "trip_policy": policy}))
    if evaluation is not None:
        layout.evaluation.write_text(json.dumps(evaluation))
    return layout


def _evaluation(recall: float = 0.9) -> dict[str, Any]:
    return {"kind": "fresh", "seed": 7, "episodes": 100, "calibrated_to": None, "false_trip_budget_per_10k": 1.0,
            "detectors": {"lstm": {"families": {"drain": {"detected": int(100 * recall), "events": 100,
                                                           "recall": recall}},
                                   "false_trips": {"per_10k": 0.5}, "lead_rows": {"median": 40.0}}}}


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str, str]:
    """A project (production: bias 0) and one candidate under versions/ (bias 1), each with card and evaluation;
    returns (root, production id, candidate id)."""
    (tmp_path / "sentinel.toml").write_text("[model]\nhorizon = 5\n\n[lifecycle]\nmin_shadow_windows = 50\n")
    _set(tmp_path, _onnx(0.0), PROD_POLICY, _evaluation())
    _set(tmp_path / VERSIONS_DIR / "cand", _onnx(1.0), CAND_POLICY, _evaluation(0.95))
    ids = {v.origins[0]: v.id for v in known_versions(load_config(tmp_path, env={}), ArtifactLayout(tmp_path))}
    return tmp_path, ids["project"], ids["versions"]


# --- the relay's recorder -----------------------------------------------------------------


@pytest.fixture(scope="module")
def market() -> Any:
    """A real market table (MarketData), as the relay's feed hands a window's rows over."""
    from sentinel.data.synthetic import generate

    return generate(1, seed=4)


def test_the_scorer_records_each_candidate_once_and_a_broken_one_never_stops_it(
        project: tuple[Path, str, str], market: Any, caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    root, prod, cand = project
    broken = _set(root / VERSIONS_DIR / "broken", b"not an onnx model", CAND_POLICY)
    config = load_config(root, env={"SENTINEL_LIFECYCLE__SHADOW": f"{cand[:8]},{cand}"})
    layout = ArtifactLayout(root)
    versions = shadow_versions(config, layout)
    assert [v.id for v in versions] == [cand]  # a prefix and the full id: one version
    versions += [v for v in known_versions(config, layout) if v.layout.root == broken.root]
    queue = Queue(layout.relay_db, clock=lambda: 50.0)
    metrics = RelayMetrics()
    scorer = ShadowScorer(versions, queue, logging.getLogger("test.shadow"), metrics.market("default"),
                          clock=lambda: 50.0)
    calls: list[int] = []

    def production() -> float:
        calls.append(1)
        return 0.25

    with caplog.at_level(logging.DEBUG, logger="test.shadow"):
        assert scorer.score(7, 420, market, layout, production) == 1
    [row] = queue.shadow_scores()
    assert (row.window_id, row.version, row.production_version, row.production_score, row.end_unix) == (
        7, cand, prod, 0.25, 420)
    mean = float(market.features()[-WINDOW:].astype(np.float32).mean())
    assert row.score == pytest.approx(mean + 1.0, rel=1e-5)  # the newest W rows, bias 1
    assert calls == [1]
    assert "event=shadow_failed window=7 version=" + [v.id for v in versions][1] in caplog.text
    assert "event=shadow_scored window=7 version=" + cand in caplog.text
    assert f'sentinel_relay_shadow_score{{market="default",version="{cand}"}}' in metrics.render().decode()
    # the same window again after a restart: the candidate is not scored again, production not asked again
    calls.clear()
    restarted = ShadowScorer(versions[:1], queue, logging.getLogger("test.shadow"), metrics.market("default"),
                             clock=lambda: 60.0)
    assert restarted.score(7, 420, market, layout, production) == 0 and len(queue.shadow_scores()) == 1
    assert calls == []
    # production moved to another set (a verifier upgrade): the next row names it
    assert scorer.score(8, 480, market, ArtifactLayout(root / VERSIONS_DIR / "cand"), production) == 1
    assert queue.shadow_scores()[-1].production_version == cand
    # too few rows for the candidate's window: logged, nothing recorded, no exception
    short = replace(market, frame=market.frame.iloc[-2:])
    assert scorer.score(9, 540, short, layout, production) == 0
    assert "event=shadow_failed window=9" in caplog.text and "needs 5" in caplog.text
    queue.close()


def test_an_unknown_shadow_version_stops_the_relay_at_start_in_one_line(project: tuple[Path, str, str]) -> None:
    root, _, _ = project
    config = load_config(root, env={"SENTINEL_LIFECYCLE__SHADOW": "v-ffffffffffff"})
    with pytest.raises(ConfigError, match=r"version 'v-ffffffffffff' is not one of the known artifact sets \(v-"):
        shadow_versions(config, ArtifactLayout(root))


# --- the report -------------------------------------------------------------------------------


def test_trips_need_consecutive_window_ids() -> None:
    policy = TripPolicy(**CAND_POLICY)
    assert trip_windows([1, 2, 4, 5], [0.7, 0.7, 0.7, 0.7], policy) == [2]  # tripped at 2, no reset: one trip
    assert trip_windows([1, 3, 4], [0.7, 0.7, 0.7], policy) == [4]  # the gap at 2 restarts the streak
    assert trip_windows([1, 3, 5], [0.7, 0.7, 0.7], policy) == []
    assert trip_windows([], [], policy) == []


def _synthetic(prod: str, cand: str) -> list[ShadowRow]:
    """Windows 1000-1099 but 1020 (never handled). Production trips at 1042 (1040-1042 high) and 1062; the
    candidate at 1039 (3 windows before production's 1042), at 1081 (extra), never near 1062 (missed), and not
    across the gap at 1020 (1019 and 1021 high)."""
    rows = []
    for w in range(1000, 1100):
        if w == 1020:
            continue
        c = 0.7 if w in (1038, 1039, 1080, 1081, 1019, 1021) else 0.1
        p = 0.9 if w in (1040, 1041, 1042, 1060, 1061, 1062) else 0.2
        rows.append(ShadowRow(w, cand, c, prod, p, 60 * w, 1.0))
    return rows


def test_the_report_matches_trips_counts_extra_and_missed_ones_and_estimates_false_trips(
        project: tuple[Path, str, str]) -> None:
    root, prod, cand = project
    layout = ArtifactLayout(root)
    queue = Queue(layout.relay_db)
    assert queue.record_shadow(_synthetic(prod, cand)) == 99
    queue.close()
    report = shadow_report(layout, load_config(root, env={}))
    [r] = report["markets"]["default"]
    assert (r["version"], r["production_versions"], r["windows"]) == (cand, [prod], 99)
    assert r["first_window_end"] == "1970-01-01T16:40:00Z" and r["last_window_end"] == "1970-01-01T18:19:00Z"
    assert r["above_threshold"] == {"candidate": 6, "production": 6}
    first, extra = r["trips"]["candidate"]
    assert (first["window_id"], first["production_window_id"], first["windows"], first["seconds"], first["extra"]) == (
        1039, 1042, -3, -180, False)
    assert (extra["window_id"], extra["production_window_id"], extra["extra"]) == (1081, 1062, True)
    assert [(p["window_id"], p["missed"]) for p in r["trips"]["production"]] == [(1042, False), (1062, True)]
    assert (r["extra_trips"], r["missed_trips"]) == (1, 1)
    ft = r["false_trips"]
    assert (ft["count"], ft["healthy_windows"]) == (1, 99 - 22)  # 1037-1047 and 1057-1067 are near a trip
    assert ft["per_10k"] == pytest.approx(1e4 / 77)
    lo, hi = ft["ci95"]
    assert lo == pytest.approx(0.0253 * 1e4 / 77, rel=1e-2) and hi == pytest.approx(5.5716 * 1e4 / 77, rel=1e-3)
    # the same rows through the library function, and --version/--market filters
    assert candidate_report(_synthetic(prod, cand), {prod: TripPolicy(**PROD_POLICY),
                                                     cand: TripPolicy(**CAND_POLICY)}, 5) == r
    assert shadow_report(layout, load_config(root, env={}), version=cand[:6])["markets"]["default"] == [r]
    assert shadow_report(layout, load_config(root, env={}), market="eth") == {"markets": {}}


def test_report_and_check_on_the_cli(project: tuple[Path, str, str], run_cli: Any) -> None:
    root, prod, cand = project
    queue = Queue(ArtifactLayout(root).relay_db)
    queue.record_shadow(_synthetic(prod, cand))
    queue.close()
    code, out, _ = run_cli("--root", root, "shadow", "report")
    assert code == 0 and f"candidate {cand} beside production {prod}" in out
    assert "production's nearest at window 1042, -3 windows (-180 s)" in out and "extra 1, missed 1" in out
    code, out, _ = run_cli("--root", root, "shadow", "check", "--version", cand)
    assert code == 1, out  # the extra trip fails it
    assert "PASS shadow_windows: 99 windows scored" in out and "FAIL no_extra_trips: 1 extra trip(s)" in out
    assert "PASS recall_drain" in out and "PASS same_episodes" in out
    code, out, _ = run_cli("--root", root, "--set", "lifecycle.min_shadow_windows=100", "shadow", "check",
                           "--version", cand, "--json")
    verdict = json.loads(out)
    assert code == 1 and verdict["production"] == prod and verdict["passed"] is False
    assert {c["name"]: c["passed"] for c in verdict["checks"]}["shadow_windows"] is False


def test_a_candidate_without_extra_trips_passes_and_one_never_scored_fails(project: tuple[Path, str, str],
                                                                           run_cli: Any) -> None:
    root, prod, cand = project
    rows = [r for r in _synthetic(prod, cand) if r.window_id < 1070]  # before the extra trip
    queue = Queue(ArtifactLayout(root).relay_db)
    queue.record_shadow(rows)
    queue.close()
    code, out, _ = run_cli("--root", root, "shadow", "check", "--version", cand)
    assert code == 0, out
    assert out.count("PASS ") == 6 and "FAIL" not in out  # 4 evaluation checks + 2 shadow checks
    code, out, _ = run_cli("--root", root, "shadow", "check", "--version", prod)
    assert code == 1 and "FAIL production: no shadow scores of" in out and "FAIL shadow_windows" in out
    code, _, err = run_cli("--root", root, "shadow", "check", "--version", "v-ffff")
    assert code == 2 and "is not one of the known artifact sets" in err  # could not run


def test_check_reads_production_from_the_newest_row(project: tuple[Path, str, str]) -> None:
    root, prod, cand = project
    rows = _synthetic(prod, cand)
    rows[-1] = ShadowRow(rows[-1].window_id, cand, 0.1, cand, 0.1, rows[-1].end_unix, 1.0)  # upgraded at the end
    queue = Queue(ArtifactLayout(root).relay_db)
    queue.record_shadow(rows)
    queue.close()
    result = promotion_check(ArtifactLayout(root), load_config(root, env={}), cand)
    assert result["production"] == cand and result["market"] == "default"
    report = shadow_report(ArtifactLayout(root), load_config(root, env={}))["markets"]["default"][0]
    assert report["production_versions"] == [prod, cand]


def test_score_with_a_version_uses_its_onnx_model(project: tuple[Path, str, str], market: Any, run_cli: Any,
                                                  tmp_path: Path) -> None:
    from sentinel.data.io import read_market_csv, write_market_csv

    root, _, cand = project
    feed = tmp_path / "feed.csv"
    write_market_csv(market, feed)
    code, out, err = run_cli("--root", root, "score", "--data", feed, "--version", cand[:7], "--window", "latest",
                             "--window", "10", "--json")
    assert code == 0, err
    latest, tenth = json.loads(out)["windows"]
    features = read_market_csv(feed).features().astype(np.float32)
    assert latest["score"] == pytest.approx(float(features[-WINDOW:].mean()) + 1.0, rel=1e-5)
    assert tenth["end_row"] == 10 and tenth["score"] == pytest.approx(float(features[5:10].mean()) + 1.0, rel=1e-5)
    assert latest["above_trip_threshold"] is (latest["score"] >= CAND_POLICY["trip_threshold"])
    code, _, err = run_cli("--root", root, "score", "--data", feed, "--version", "v-0000")
    assert code == 1 and "is not one of the known artifact sets" in err


def test_check_takes_productions_figures_from_retrain_on_the_candidates_episodes(project: tuple[Path, str, str],
                                                                                 run_cli: Any) -> None:
    root, prod, cand = project
    candidate = ArtifactLayout(root / VERSIONS_DIR / "cand")
    calibrated = {**_evaluation(0.95), "calibrated_to": "latest.csv"}
    candidate.evaluation.write_text(json.dumps(calibrated))
    queue = Queue(ArtifactLayout(root).relay_db)
    queue.record_shadow([r for r in _synthetic(prod, cand) if r.window_id < 1070])
    queue.close()
    code, out, _ = run_cli("--root", root, "shadow", "check", "--version", cand)
    assert code == 1 and "FAIL same_episodes" in out  # production's own evaluation is on other episodes

    # retrain measured this production on the candidate's episodes: those figures are compared
    retrain = {"production": {"id": prod, "fresh": {**_evaluation(0.9), "calibrated_to": "latest.csv"}}}
    (candidate.models_dir / "retrain.json").write_text(json.dumps(retrain))
    code, out, _ = run_cli("--root", root, "shadow", "check", "--version", cand)
    assert code == 0, out
    # ... only for the production model retrain measured
    retrain["production"]["id"] = "v-000000000000"
    (candidate.models_dir / "retrain.json").write_text(json.dumps(retrain))
    code, out, _ = run_cli("--root", root, "shadow", "check", "--version", cand)
    assert code == 1 and "FAIL same_episodes" in out
