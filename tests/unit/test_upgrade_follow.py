"""Following a verifier upgrade without a chain: which set is in force, what a set fixes, the attester's switch
(its node faked: only the decision is under test), and the deployment record's upgrade fields."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.attester.service import Attester, AttestRequest, Refusal, Target
from sentinel.chain.deploy import Deployment, Deployments, load_deployments, write_deployments
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from sentinel.in_force import UnknownModel, bundle_vk, candidate_sets, in_force, settings_of
from sentinel.lifecycle.upgrade import _duration, utc
from sentinel.versions import read_version

BREAKER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
VERIFIER_A, VERIFIER_B = "0x" + "aa" * 20, "0x" + "bb" * 20


def _set(root: Path, model: bytes, runtime: bytes, *, cadence: int = 60, window: int = 50) -> ArtifactLayout:
    """An artifact set with a built circuit: its manifest names the verifier code, vk and cadence."""
    layout = ArtifactLayout(root)
    layout.ensure(layout.models_dir, layout.circuits_dir)
    layout.onnx_model.write_bytes(model)
    layout.compiled_circuit.write_bytes(b"compiled")
    layout.circuit_manifest.write_text(json.dumps({
        "window": window, "cadence_seconds": cadence, "fidelity": {"max_abs_error": 0.01},
        "verifier_runtime_sha256": hashlib.sha256(runtime).hexdigest(),
        "artifacts": {"onnx": {"sha256": hashlib.sha256(model).hexdigest()},
                      "vk": {"sha256": hashlib.sha256(b"vk of " + model).hexdigest()}}}))
    return layout


@pytest.fixture
def project(tmp_path: Path) -> ArtifactLayout:
    """A project on model A, with model B (another cadence) added under versions/."""
    layout = _set(tmp_path, b"model A", b"code A")
    (tmp_path / "sentinel.toml").write_text("")
    b = read_version(_set(tmp_path / "staging", b"model B", b"code B", cadence=120), "staging")
    _set(tmp_path / "versions" / b.id, b"model B", b"code B", cadence=120)
    return layout


def test_the_set_in_force_is_found_by_the_verifiers_code(project: ArtifactLayout, tmp_path: Path):
    config = load_config(project.root, env={})
    versions = candidate_sets(config, project, project)
    assert [v.origins for v in versions] == [("project",), ("versions",)]
    assert in_force(versions, VERIFIER_B, b"code B").layout.root.parent.name == "versions"
    assert in_force(versions, VERIFIER_A, b"code A").id == read_version(project, "x").id
    # a market's own set outside the project is looked at too
    own = _set(tmp_path / "elsewhere", b"model C", b"code C")
    assert in_force(candidate_sets(config, project, own), VERIFIER_A, b"code C").layout.root == own.root
    with pytest.raises(UnknownModel) as info:
        in_force(versions, VERIFIER_A, b"rogue code")
    message = str(info.value)
    assert VERIFIER_A in message and hashlib.sha256(b"rogue code").hexdigest()[:16] in message
    assert "sentinel models add" in message and "\n" not in message


def test_a_sets_settings_and_a_bundles_vk(project: ArtifactLayout, tmp_path: Path):
    settings = settings_of(project)
    assert (settings.window, settings.cadence, settings.batch_windows, settings.max_abs_error) == (50, 60.0, 0, 0.01)
    assert settings.vk_sha256 == {hashlib.sha256(b"vk of model A").hexdigest()}
    bundle = tmp_path / "window-7.json"
    bundle.write_text(json.dumps({"model": {"vk_sha256": "ab" * 32}}))
    assert bundle_vk(bundle) == "ab" * 32
    assert bundle_vk(tmp_path / "missing.json") is None and bundle_vk(None) is None


class FakeNode:
    """The breaker's verifier and the code at each address, as the attester's node would answer."""

    label = "http://node.example"

    def __init__(self, verifier: str, code: dict[str, bytes]) -> None:
        self.current = verifier
        self.codes = code
        self.reads = 0

    def verifier(self, breaker: str) -> str:
        assert breaker == BREAKER
        self.reads += 1
        return self.current

    def code(self, address: str) -> bytes:
        return self.codes[address]


def _attester(project: ArtifactLayout) -> Attester:
    config = load_config(project.root, {"attester.feed": str(project.root / "feed.csv")}, env={})
    return Attester(project, config, demo_key(2), target=Target(31337, BREAKER))


def test_the_attester_hashes_with_the_set_whose_verifier_the_breaker_calls(project: ArtifactLayout):
    attester = _attester(project)
    try:
        health = attester.health()
        assert health["follows_upgrades"] is False and health["model_version"] == read_version(project, "x").id
        node = FakeNode(VERIFIER_A, {VERIFIER_A: b"code A", VERIFIER_B: b"code B"})
        attester._follow(node)  # type: ignore[arg-type]
        assert attester.artifacts.root == project.root and attester.cadence == 60
        node.current = VERIFIER_B  # executeVerifier mined
        attester._follow(node)  # type: ignore[arg-type]
        assert attester.artifacts.root.parent.name == "versions" and (attester.cadence, attester.window) == (120, 50)
        assert attester.model_version == attester.artifacts.root.name
        assert attester.feed.cadence == 120  # the feed cuts windows at the model's cadence
        # the window id is checked at the model in force's cadence
        attester._check_window_id(AttestRequest(31337, BREAKER, 10, 1200 + 119, 1))
        with pytest.raises(Refusal, match="at the model's 120 s cadence"):
            attester._check_window_id(AttestRequest(31337, BREAKER, 20, 1200, 1))
        node.current, node.codes["0x" + "cc" * 20] = "0x" + "cc" * 20, b"rogue"
        with pytest.raises(Refusal) as info:
            attester._follow(node)  # type: ignore[arg-type]
        assert (info.value.status, info.value.reason) == (503, "unknown_model")
        assert "sentinel models add" in info.value.message
        assert attester.health()["ready"] is False and attester.health()["model_error"] == info.value.message
    finally:
        attester.close()


def test_the_deployment_record_keeps_a_pending_upgrade_and_the_upgrades(tmp_path: Path):
    layout = ArtifactLayout(tmp_path)
    base = Deployment(chain_id=31337, rpc_url="http://x", block=1, deployed_at="", deployer="", governance="",
                      guardian="", attesters=[], quorum=2, timelock_seconds=3600, score_scale=10, policy={},
                      circuit={}, contracts={}, compiler="")
    layout.deployments.parent.mkdir(parents=True)
    # a version-1 file (one deployment, written before versions) still reads, with no upgrade fields
    v1 = {k: v for k, v in base.to_dict().items() if k not in ("model_version", "pending_upgrade", "upgrades")}
    layout.deployments.write_text(json.dumps({"version": 1, **v1}))
    old = load_deployments(layout).market()
    assert (old.model_version, old.pending_upgrade, old.upgrades) == ("", None, [])
    pending = replace(base, model_version="v-aaaaaaaaaaaa", pending_upgrade={"version": "v-bbbbbbbbbbbb", "eta": 5},
                      upgrades=[{"version": "v-aaaaaaaaaaaa", "block": 3}])
    write_deployments(layout, Deployments({"default": pending}))
    again = load_deployments(layout).market()
    assert again.pending_upgrade == {"version": "v-bbbbbbbbbbbb", "eta": 5} and again.upgrades[0]["block"] == 3
    assert again.model_version == "v-aaaaaaaaaaaa"


def test_time_left_reads_as_hours_minutes_seconds():
    assert _duration(3725) == "1 h 02 min 05 s" and _duration(59) == "0 min 59 s" and _duration(-3) == "0 min 00 s"
    assert utc(0) == "1970-01-01T00:00:00Z"
