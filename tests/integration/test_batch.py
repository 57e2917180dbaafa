"""The batch circuit set on real EZKL: K consecutive windows of the tiny feed in one proof."""

from __future__ import annotations

import json

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.data.io import read_market_csv
from sentinel.errors import CircuitError
from sentinel.zk.instances import felt_from_hex, fixed_to_float
from sentinel.zk.layout import BatchInstanceLayout
from sentinel.zk.prove import Prover
from sentinel.zk.verify import verify_bundle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def batch_proof(tiny_circuit, tiny_feed, tiny_latest_batch, tiny_bundle):
    """The feed's last K windows proven in one batch proof, and each of them proven alone (the last one is the
    session's ``tiny_bundle``)."""
    layout = ArtifactLayout(tiny_circuit)
    config = load_config(tiny_circuit, env={})
    market = read_market_csv(tiny_feed)
    k = config.circuit.batch_windows
    ends = list(range(len(market.frame) - k, len(market.frame)))
    single = Prover(layout, config)
    singles = [json.loads(single.prove_end_row(market, end).bundle.read_text()) for end in ends[:-1]]
    singles.append(json.loads(tiny_bundle.read_text()))
    assert singles[-1]["window_end_row"] == ends[-1] + 1
    return tiny_latest_batch, singles, ends


def test_build_writes_the_batch_set_beside_the_single_one(tiny_circuit):
    layout = ArtifactLayout(tiny_circuit)
    single = json.loads(layout.circuit_manifest.read_text())
    batch = json.loads(layout.batch().circuit_manifest.read_text())
    assert single["batch"] == {"windows": 2, "manifest": "circuits/batch/manifest.json"}
    assert batch["windows_per_proof"] == 2
    for name in ("onnx", "settings", "compiled_circuit", "vk", "verifier_source", "verifier_artifact"):
        assert batch["artifacts"][name]["path"].startswith("circuits/batch/"), name
        assert (tiny_circuit / batch["artifacts"][name]["path"]).exists(), name
    assert batch["artifacts"]["vk"]["sha256"] != single["artifacts"]["vk"]["sha256"]
    assert batch["source"] == {"onnx": single["artifacts"]["onnx"], "single_input_key": single["input_key"],
                               "single_manifest": "circuits/manifest.json"}
    assert batch["circuit"]["logrows"] > single["circuit"]["logrows"]
    assert (tiny_circuit / batch["srs"]["path"]).parent == layout.batch().circuits_dir
    assert layout.batch().pk.exists() and "TEST-ONLY" in batch["srs"]["warning"]
    # The layout the build recorded is the one EZKL's settings give, and its self-check proof obeyed it.
    settings = json.loads(layout.batch().circuit_settings.read_text())
    assert settings["model_instance_shapes"] == [[1, 1], [1, 1]] and len(settings["model_input_scales"]) == 2
    assert BatchInstanceLayout.from_manifest(batch["instances"]).split(["h0", "h1", "s0", "s1"]) == (
        ["h0", "h1"], ["s0", "s1"])
    assert batch["self_check"]["verified"] is True and batch["self_check"]["hashes_equal_single"] is True
    assert batch["fidelity"]["max_abs_error"] <= 0.02
    artifact = json.loads(layout.batch().verifier_artifact.read_text())
    assert len(bytes.fromhex(artifact["deployedBytecode"][2:])) == batch["verifier_runtime_bytes"] > 1000


def test_a_second_build_skips_both_sets(tiny_circuit, run_cli):
    code, out, err = run_cli("--root", tiny_circuit, "circuit", "build", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["skipped"] is True and result["batch"]["skipped"] is True
    assert result["manifest"]["batch"]["windows"] == result["batch"]["manifest"]["windows_per_proof"] == 2


def test_batch_bundle_matches_the_single_proofs_of_the_same_windows(tiny_circuit, batch_proof):
    result, singles, ends = batch_proof
    bundle = json.loads(result.bundle.read_text())
    k = bundle["windows_per_proof"]
    assert result.bundle == ArtifactLayout(tiny_circuit).batch_bundle(singles[0]["window_id"], singles[-1]["window_id"])
    assert bundle["kind"] == "batch" and len(bundle["windows"]) == k == 2 and len(bundle["instances"]) == 2 * k
    assert [w["window_id"] for w in bundle["windows"]] == [s["window_id"] for s in singles] == result.window_ids
    assert result.window_ids[1] == result.window_ids[0] + 1
    quantum = 2.0 ** -bundle["score_scale"]
    for i, (window, single) in enumerate(zip(bundle["windows"], singles, strict=True)):
        assert window["window_end_row"] == ends[i] + 1 == single["window_end_row"]
        assert (window["window_end"], window["window_end_unix"]) == (single["window_end"], single["window_end_unix"])
        # The hash binds the proof to the rows: exactly the single circuit's.
        assert window["input_hash"] == single["input_hash"]
        assert felt_from_hex(bundle["instances"][i]) == int(single["input_hash"], 16)
        assert window["score"] == fixed_to_float(felt_from_hex(bundle["instances"][k + i]), bundle["score_scale"])
        # EZKL may round a copy's score a quantum or two away from the single circuit's (sentinel.zk.batch).
        assert abs(window["score"] - single["score"]) <= 2 * quantum
        assert window["float_score"] == pytest.approx(single["float_score"], abs=1e-6)
    assert bundle["model"]["vk_sha256"] != singles[0]["model"]["vk_sha256"]


def test_batch_bundle_verifies_with_ezkl_and_the_cli(tiny_circuit, batch_proof, run_cli):
    result, _, _ = batch_proof
    outcome = verify_bundle(ArtifactLayout(tiny_circuit), result.bundle)
    assert outcome.valid, outcome.reason
    assert [w["window_id"] for w in outcome.windows or []] == result.window_ids
    code, out, err = run_cli("--root", tiny_circuit, "verify", result.bundle, "--json")
    assert code == 0, err
    assert json.loads(out)["bundles"][0]["windows"] == outcome.windows


def _tamper(bundle_path, tmp_path, edit):
    bundle = json.loads(bundle_path.read_text())
    edit(bundle)
    path = tmp_path / "tampered-batch.json"
    path.write_text(json.dumps(bundle))
    return path


def _flip_proof(b):
    proof = b["ezkl_proof"]
    proof["proof"][100] ^= 0x01
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()


def _swap_scores(b):
    """Both windows' scores and their instances swapped consistently: only the proof can tell."""
    k = b["windows_per_proof"]
    b["instances"][k], b["instances"][k + 1] = b["instances"][k + 1], b["instances"][k]
    b["ezkl_proof"]["instances"][0] = b["instances"]
    b["windows"][0]["score"], b["windows"][1]["score"] = b["windows"][1]["score"], b["windows"][0]["score"]


def _raise_score(b):
    b["windows"][1]["score"] = 1.0 if b["windows"][1]["score"] < 0.5 else 0.0


def _renumber(b):
    b["windows"][1]["window_id"] += 1


@pytest.mark.parametrize(("edit", "reason"), [
    (_flip_proof, "EZKL rejected the proof"),
    (_swap_scores, "EZKL rejected the proof"),
    (_raise_score, "stated score"),
    (_renumber, "consecutive and ascending"),
])
def test_a_tampered_batch_bundle_fails_verify(tiny_circuit, batch_proof, run_cli, tmp_path, edit, reason):
    result, _, _ = batch_proof
    bundle = json.loads(result.bundle.read_text())
    if edit is _swap_scores and bundle["instances"][2] == bundle["instances"][3]:
        pytest.skip("both windows have the same score felt: swapping changes nothing")
    code, _, err = run_cli("--root", tiny_circuit, "verify", _tamper(result.bundle, tmp_path, edit))
    assert code == 1
    assert reason in err


def test_prove_windows_refuses_rows_that_are_not_consecutive(tiny_circuit, tiny_feed):
    layout = ArtifactLayout(tiny_circuit)
    config = load_config(tiny_circuit, env={})
    market = read_market_csv(tiny_feed)
    prover = Prover(layout.batch(), config)
    last = len(market.frame) - 1
    with pytest.raises(CircuitError, match="must end on consecutive rows"):
        prover.prove_windows(market, [last - 2, last])
    with pytest.raises(CircuitError, match="takes 2 windows, got 3"):
        prover.prove_windows(market, [last - 2, last - 1, last])
    with pytest.raises(CircuitError, match="prove_windows needs the batch set"):
        Prover(layout, config).prove_windows(market, [last - 1, last])
    with pytest.raises(CircuitError, match="proves 2 windows at once"):
        prover.prove_end_row(market, last)
