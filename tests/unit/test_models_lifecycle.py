"""``sentinel models`` and ``sentinel retrain``'s decision: the listing (with the chain down), adding a set, the
defaults that keep evaluations comparable, and which candidates are written (exit codes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click
import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.cli.models_cli import finish_retrain
from sentinel.config import load_config
from sentinel.lifecycle.registry import evaluation_summary, fresh_defaults, list_versions, set_config
from sentinel.lifecycle.retrain import Trial, decide
from sentinel.versions import read_version


def _set(root: Path, model: bytes, runtime: bytes | None = None, evaluation: dict[str, Any] | None = None,
         data: str | None = None) -> ArtifactLayout:
    """A project-like artifact set: ONNX bytes (versions only hash them), a card (naming ``data`` under data/, which
    is then written), a circuit manifest naming ``runtime`` as its verifier code, an evaluation."""
    layout = ArtifactLayout(root)
    layout.ensure(layout.models_dir)
    layout.onnx_model.write_bytes(model)
    card: dict[str, Any] = {"trained_at": "2026-11-27T00:00:00Z"}
    if data is not None:
        card["data"] = {"path": data}
        layout.ensure(layout.data_dir)
        (layout.data_dir / data).write_text("scenarios\n")
    layout.model_card.write_text(json.dumps(card))
    if runtime is not None:
        layout.ensure(layout.circuits_dir)
        layout.circuit_manifest.write_text(json.dumps({
            "verifier_runtime_sha256": hashlib.sha256(runtime).hexdigest(), "circuit": {"logrows": 14},
            "artifacts": {"onnx": {"sha256": hashlib.sha256(model).hexdigest()}}}))
    if evaluation is not None:
        layout.evaluation.write_text(json.dumps(evaluation))
    return layout


def _fresh(recall: dict[str, tuple[int, int]], per_10k: float, lead: float | None, *, seed: int = 2718,
           episodes: int = 40, like: str | None = None) -> dict[str, Any]:
    """An ``evaluate --fresh --json`` document with the LSTM's figures (what the criteria read)."""
    families = {f: {"detected": d, "events": n, "recall": d / n} for f, (d, n) in recall.items()}
    return {"kind": "fresh", "seed": seed, "episodes": episodes, "calibrated_to": like, "date": "2026-11-27",
            "false_trip_budget_per_10k": 1.0,
            "detectors": {"lstm": {"families": families, "false_trips": {"per_10k": per_10k, "count": 0},
                                   "lead_rows": {"median": lead}}}}


def _real(trips: int, windows: int = 1951) -> dict[str, Any]:
    return {"kind": "real", "total": {"windows": windows, "false_trips": {"count": trips}}}


def _deployed(root: Path, runtime_sha: str) -> None:
    from sentinel.chain.deploy import ContractRecord, Deployment

    contracts = {"SentinelBreaker": ContractRecord(address="0x" + "11" * 20, tx_hash="0x" + "00" * 32, block=3,
                                                   gas_used=1, creation_sha256="", runtime_sha256="",
                                                   runtime_bytes=0, abi=[])}
    deployment = Deployment(chain_id=31337, rpc_url="http://127.0.0.1:1", block=3, deployed_at="", deployer="",
                            governance="", guardian="", attesters=[], quorum=1, timelock_seconds=3600,
                            score_scale=10, policy={}, circuit={"verifier_runtime_sha256": runtime_sha},
                            contracts=contracts, compiler="")
    layout = ArtifactLayout(root)
    layout.ensure(layout.deployments.parent)
    layout.deployments.write_text(json.dumps(deployment.to_dict()))


def test_the_listing_shows_figures_circuits_and_the_deployed_version_with_the_chain_down(run_cli, tmp_path: Path):
    evaluation = _fresh({"drain": (3, 4), "flash": (1, 2)}, 0.5, 12.0)
    _set(tmp_path, b"production", b"prod code")
    (tmp_path / "sentinel.toml").write_text("")
    candidate = _set(tmp_path / "versions" / "x", b"candidate", evaluation=evaluation)
    cand_id = read_version(candidate, "versions").id
    prod_id = read_version(ArtifactLayout(tmp_path), "project").id
    _deployed(tmp_path, hashlib.sha256(b"prod code").hexdigest())

    listing = list_versions(load_config(tmp_path, env={}), ArtifactLayout(tmp_path))
    assert [v.id for v in listing.versions] == [prod_id, cand_id]
    assert listing.chain_note is not None and "did not answer" in listing.chain_note
    (market,) = listing.markets
    assert (market.market, market.source, market.version) == ("default", "deployment record", prod_id)

    code, out, err = run_cli("--root", tmp_path, "models", "list")
    assert code == 0, err
    assert f"{prod_id}  project  {tmp_path}" in out and "circuit: built, 2^14 rows" in out
    assert "deployed with on market default" in out and "the chain did not answer" in out
    figures = "recall drain 0.75, flash 0.50; false trips 0.50/10k; median lead 12 rows"
    assert f"evaluation: 40 fresh episodes (seed 2718): {figures}" in out
    assert "evaluation: not evaluated" in out and "circuit: not built" in out

    code, out, err = run_cli("--root", tmp_path, "models", "list", "--json")
    assert code == 0, err
    doc = json.loads(out)
    by_id = {v["id"]: v for v in doc["versions"]}
    assert by_id[prod_id]["running_on"] == ["default"] and by_id[cand_id]["running_on"] == []
    assert by_id[cand_id]["evaluation"]["recall"] == {"drain": 0.75, "flash": 0.5}
    assert by_id[prod_id]["circuit"]["logrows"] == 14 and by_id[cand_id]["circuit"] is None
    assert doc["markets"][0]["source"] == "deployment record"


def test_nothing_deployed_lists_the_versions_alone(tmp_path: Path):
    _set(tmp_path, b"production")
    listing = list_versions(load_config(tmp_path, env={}), ArtifactLayout(tmp_path))
    assert len(listing.versions) == 1 and not listing.deployed and listing.markets == []
    assert listing.to_dict()["versions"][0]["evaluation"] is None
    assert evaluation_summary(None) is None


def test_models_add_copies_a_set_with_its_training_data(run_cli, tmp_path: Path):
    (tmp_path / "project").mkdir()
    source = _set(tmp_path / "onboarded", b"market model", b"its code", data="scenarios-like-feed.csv")
    code, out, err = run_cli("--root", tmp_path / "project", "models", "add", source.root, "--no-circuits", "--json")
    assert code == 0, err
    added = json.loads(out)
    version = ArtifactLayout(Path(added["path"]))
    assert added["id"] == read_version(source, "x").id and not added["built"]
    assert (version.data_dir / "scenarios-like-feed.csv").read_text() == "scenarios\n"
    assert not version.circuits_dir.exists()


def test_evaluations_default_to_productions_episodes_and_sets_to_their_own_settings(tmp_path: Path):
    assert fresh_defaults(ArtifactLayout(tmp_path)) == {}
    _set(tmp_path, b"production", evaluation=_fresh({}, 0.0, None, seed=99, episodes=12, like="/feeds/btc.csv"))
    assert fresh_defaults(ArtifactLayout(tmp_path)) == {"seed": 99, "episodes": 12, "like": "/feeds/btc.csv"}

    (tmp_path / "sentinel.toml").write_text("[model]\nunits = 5\n")
    own = tmp_path / "versions" / "v"
    own.mkdir(parents=True)
    assert set_config(own, tmp_path).model.units == 5  # none of its own: the project's
    (own / "sentinel.toml").write_text("[model]\nunits = 3\n")
    assert set_config(own, tmp_path, {"model.epochs": 2}).model.units == 3
    assert set_config(own, tmp_path, {"model.epochs": 2}).model.epochs == 2


def _trial(tmp_path: Path, candidate: dict[str, Any], production: dict[str, Any], cand_trips: int,
           prod_trips: int, model: bytes = b"candidate") -> tuple[ArtifactLayout, Trial]:
    project = _set(tmp_path / "project", b"production")
    work = _set(tmp_path / "project" / "versions" / ".retrain-1", model, data="scenarios-like-feed.csv")
    trial = Trial(work=work, market="default", real=Path("feed.csv"), production=read_version(project, "project"),
                  candidate=read_version(work, "candidate"), calibration={"episodes": 40}, model={},
                  production_fresh=production, candidate_fresh=candidate, production_real=_real(prod_trips),
                  candidate_real=_real(cand_trips), seconds=1.0)
    return project, trial


def test_a_candidate_that_beats_production_is_written_with_its_evaluation_and_report(tmp_path: Path, capsys):
    production = _fresh({"drain": (6, 8), "flash": (3, 4)}, 2.0, 20.0)
    candidate = _fresh({"drain": (7, 8), "flash": (3, 4)}, 1.5, 22.0)
    project, trial = _trial(tmp_path, candidate, production, cand_trips=0, prod_trips=1)
    result = decide(trial, project, load_config(project.root, env={}).lifecycle)
    assert result.report["passed"] and result.failed == []
    assert result.written == project.root / "versions" / trial.candidate.id
    written = ArtifactLayout(result.written)
    assert json.loads(written.evaluation.read_text()) == candidate
    report = json.loads((written.models_dir / "retrain.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["new_model", "same_episodes", "recall_drain", "recall_flash",
                                                     "false_trips", "median_lead", "real_feed_trips"]
    assert report["candidate"]["path"] == str(result.written)
    assert (written.data_dir / "scenarios-like-feed.csv").is_file()

    finish_retrain(result, as_json=False)  # exit 0: no Exit raised
    out = capsys.readouterr().out
    assert f"wrote the candidate {trial.candidate.id}" in out and f"sentinel models build {trial.candidate.id}" in out


@pytest.mark.parametrize(("candidate", "cand_trips", "failed"), [
    (_fresh({"drain": (5, 8), "flash": (3, 4)}, 1.5, 22.0), 0, ["recall_drain"]),
    (_fresh({"drain": (6, 8), "flash": (3, 4)}, 2.5, 18.0), 0, ["false_trips", "median_lead"]),
    (_fresh({"drain": (6, 8), "flash": (3, 4)}, 2.0, 20.0), 2, ["real_feed_trips"]),
    (_fresh({"drain": (8, 8), "flash": (4, 4)}, 0.0, 30.0, seed=1), 0, ["same_episodes"]),
])
def test_a_candidate_failing_any_check_writes_nothing_and_exits_1(tmp_path: Path, capsys, candidate: dict[str, Any],
                                                                  cand_trips: int, failed: list[str]):
    production = _fresh({"drain": (6, 8), "flash": (3, 4)}, 2.0, 20.0)
    project, trial = _trial(tmp_path, candidate, production, cand_trips=cand_trips, prod_trips=1)
    result = decide(trial, project, load_config(project.root, env={}).lifecycle)
    assert [c.name for c in result.failed] == failed and result.written is None
    assert result.report["candidate"]["path"] is None and not result.report["passed"]
    assert [p.name for p in (project.root / "versions").iterdir()] == [".retrain-1"]
    assert not trial.work.evaluation.exists()
    with pytest.raises(click.exceptions.Exit) as exit_:
        finish_retrain(result, as_json=True)
    assert exit_.value.exit_code == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["checks"] == result.report["checks"]
    assert captured.err.splitlines() == [f"FAILED {c.name}: {c.detail}" for c in result.failed]


def test_productions_own_model_is_no_candidate(tmp_path: Path):
    same = _fresh({"drain": (6, 8)}, 2.0, 20.0)
    project, trial = _trial(tmp_path, same, same, cand_trips=1, prod_trips=1, model=b"production")
    result = decide(trial, project, load_config(project.root, env={}).lifecycle)
    assert [c.name for c in result.failed] == ["new_model"] and "is production's model" in result.failed[0].detail


def test_retrain_that_cannot_run_exits_2_and_says_so_in_its_help(run_cli, tmp_path: Path):
    bad = tmp_path / "feed.csv"
    bad.write_text("not,a,feed\n")
    code, _, err = run_cli("--root", tmp_path, "retrain", "--like", bad)
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    code, out, _ = run_cli("retrain", "--help")
    assert code == 0
    assert "1 no candidate: it did not beat production" in " ".join(out.split())
