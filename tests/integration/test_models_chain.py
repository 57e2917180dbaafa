"""``sentinel models list`` on a live chain: the version a market's breaker runs is read from its verifier's code,
and a proposed verifier is named with the time it may be executed (real Anvil, the tiny circuits)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import BREAKER, connect, contract
from sentinel.chain.deploy import ZERO_ADDRESS, deploy_all, verifier_contract
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from sentinel.lifecycle.registry import utc
from sentinel.versions import add_version, read_version
from tests.integration.batch_circuit import chain_project

pytestmark = pytest.mark.integration


def test_the_listing_reads_which_version_each_breaker_runs_and_proposes(run_cli, tiny_circuit: Path,
                                                                        other_model_circuit: Path, tmp_path: Path):
    root = chain_project(tiny_circuit, None, tmp_path / "project")
    shutil.copytree(tiny_circuit / "models", root / "models")
    shutil.copy(tiny_circuit / "sentinel.toml", root / "sentinel.toml")
    layout = ArtifactLayout(root)
    production = read_version(layout, "project")
    candidate = add_version(layout, other_model_circuit)
    assert production.built and candidate.built and production.id != candidate.id

    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path / "anvil.log")
    try:
        config = load_config(root, env={})
        deployment = deploy_all(layout, config, f"http://127.0.0.1:{port}")
        code, out, err = run_cli("--root", root, "models", "list", "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["chain_note"] is None
        (market,) = doc["markets"]
        assert (market["market"], market["source"], market["version"]) == ("default", "chain", production.id)
        assert market["pending_verifier"] is None
        by_id = {v["id"]: v for v in doc["versions"]}
        assert by_id[production.id]["running_on"] == ["default"] and by_id[candidate.id]["running_on"] == []

        # governance proposes the candidate's verifier: listed as proposed, with the time it may execute
        chain = connect(deployment, config)
        verifier, manifest = verifier_contract(candidate.layout)
        deployed = chain.deploy(verifier, [], demo_key(0))
        breaker = contract(chain, deployment, BREAKER)
        chain.transact(breaker.functions.proposeVerifier(
            deployed.address, manifest["instances"]["score_scale"], int(manifest["cadence_seconds"]),
            chain.codehash(deployed.address), ZERO_ADDRESS, 0, b"\0" * 32), demo_key(0), "propose")
        eta = int(chain.call(breaker.functions.pendingVerifierEta(), "eta"))
        code, out, err = run_cli("--root", root, "models", "list")
        assert code == 0, err
        assert f"runs on market default (breaker {deployment.address(BREAKER)})" in out
        assert f"proposed on market default, executable after {utc(eta)}" in out
        assert out.index("proposed on market default") > out.index(candidate.id)
    finally:
        anvil.stop_process(process.pid)

    # the node gone: one line says so, and the market shows the version it was deployed with
    code, out, err = run_cli("--root", root, "models", "list")
    assert code == 0, err
    assert "the chain did not answer" in out and "deployed with on market default" in out
