"""The circuit on real EZKL and npm solc: build, prove, verify, tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.data.windows import window_id
from sentinel.zk.instances import BN254_R, felt_from_hex, fixed_to_float
from sentinel.zk.layout import INPUT_HASH_INDEX, SCORE_INDEX, InstanceLayout

pytestmark = pytest.mark.integration


def test_build_writes_a_complete_manifest(tiny_circuit):
    layout = ArtifactLayout(tiny_circuit)
    manifest = json.loads(layout.circuit_manifest.read_text())
    for name in ("onnx", "settings", "compiled_circuit", "vk", "verifier_source", "verifier_artifact"):
        assert (tiny_circuit / manifest["artifacts"][name]["path"]).exists(), name
    assert manifest["circuit"]["check_mode"] == "SAFE"
    assert manifest["circuit"]["visibility"] == {"input": "hashed", "params": "fixed", "output": "public"}
    assert InstanceLayout.from_manifest(manifest["instances"]).is_breakers()
    assert (manifest["instances"]["input_hash_index"], manifest["instances"]["score_index"]) == (0, 1)
    assert "TEST-ONLY" in manifest["srs"]["warning"]
    artifact = json.loads(layout.verifier_artifact.read_text())
    assert len(bytes.fromhex(artifact["deployedBytecode"][2:])) == manifest["verifier_runtime_bytes"] > 1000
    assert artifact["compiler"].startswith("0.8.20")
    sol = layout.verifier_sol.read_text()
    assert "contract Halo2Verifier" in sol and sol.rstrip().endswith("}")
    assert manifest["fidelity"]["max_abs_error"] <= 0.02
    assert manifest["self_check"]["verified"] is True and 0.0 <= manifest["self_check"]["score"] <= 1.0


def _two_gate_circuit(work, equation_three_operand: bool):
    """A small hashed-input circuit whose output is sum_k tanh(x.W1)_k * sigmoid(x.W2)_k * w3_k.

    Written either as EZKL 23.0.5's three-operand Einsum (laid out with constraints its own
    witness does not satisfy) or as a product then a MatMul (sound).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from sentinel.zk import ezkl_api

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32), name)
               for name, shape in (("W1", (4, 3)), ("W2", (4, 3)), ("W3", (3, 1)))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"]), helper.make_node("Tanh", ["m1"], ["a"]),
             helper.make_node("MatMul", ["x", "W2"], ["m2"]), helper.make_node("Sigmoid", ["m2"], ["b"])]
    if equation_three_operand:
        nodes.append(helper.make_node("Einsum", ["a", "b", "W3"], ["y"], equation="bk,bk,kn->bn"))
    else:
        nodes += [helper.make_node("Mul", ["a", "b"], ["ab"]), helper.make_node("MatMul", ["ab", "W3"], ["y"])]
    graph = helper.make_graph(nodes, "two_gates", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx_path, settings, compiled = work / "m.onnx", work / "settings.json", work / "m.compiled"
    onnx.save(model, onnx_path)
    ezkl_api.gen_settings(onnx_path, settings, ezkl_api.run_args("hashed", "fixed", "public", "safe", 1, 4096, 3))
    data = work / "calibration.json"
    data.write_text(json.dumps({"input_data": [[0.3, -0.2, 0.5, 0.1]]}))
    ezkl_api.calibrate(data, onnx_path, settings, [10], None)
    ezkl_api.compile_circuit(onnx_path, compiled, settings)
    logrows = json.loads(settings.read_text())["run_args"]["logrows"]
    srs = work / "test.srs"
    ezkl_api.gen_srs(srs, logrows)
    ezkl_api.setup(compiled, work / "vk.key", work / "pk.key", srs)
    return compiled, work / "pk.key", work / "vk.key", settings, srs


@pytest.mark.parametrize("three_operand", [False, True])
def test_build_self_check_catches_a_circuit_whose_proofs_cannot_verify(tmp_path, three_operand):
    """The fidelity check compares witnesses; only a proof shows that EZKL's constraints hold."""
    import numpy as np

    from sentinel.errors import CircuitError
    from sentinel.zk.build import self_check

    compiled, pk, vk, settings, srs = _two_gate_circuit(tmp_path, three_operand)
    window = np.array([[0.3, -0.2, 0.5, 0.1]])
    if three_operand:
        with pytest.raises(CircuitError,
                           match="self-check: the circuit's own proof of the test window does not verify"):
            self_check(tmp_path, compiled, pk, vk, settings, srs, window, "test window")
    else:
        check = self_check(tmp_path, compiled, pk, vk, settings, srs, window, "test window")
        assert check["verified"] is True and check["window"] == "test window"


def test_rebuild_is_skipped_when_inputs_are_unchanged(tiny_circuit, run_cli):
    code, out, err = run_cli("--root", tiny_circuit, "circuit", "build", "--json")
    assert code == 0, err
    assert json.loads(out)["skipped"] is True


def test_bundle_verifies_and_decodes(tiny_circuit, tiny_bundle, run_cli):
    bundle = json.loads(tiny_bundle.read_text())
    score_felt = felt_from_hex(bundle["instances"][SCORE_INDEX])
    assert 0 <= bundle["score"] <= 1
    assert bundle["score"] == fixed_to_float(score_felt, bundle["score_scale"])
    assert int(bundle["input_hash"], 16) == felt_from_hex(bundle["instances"][INPUT_HASH_INDEX]) < BN254_R
    assert abs(bundle["score"] - bundle["float_score"]) <= 0.02
    code, out, err = run_cli("--root", tiny_circuit, "verify", tiny_bundle, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["valid"] is True
    assert [(b["bundle"], b["valid"]) for b in result["bundles"]] == [(str(tiny_bundle), True)]


def _tampered(src, tmp_path, edit):
    bundle = json.loads(src.read_text())
    edit(bundle)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(bundle))
    return path


def test_flipped_proof_byte_fails(tiny_circuit, tiny_bundle, run_cli, tmp_path):
    def flip(b):
        proof = b["ezkl_proof"]
        proof["proof"][100] ^= 0x01
        proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()

    code, _, err = run_cli("--root", tiny_circuit, "verify", _tampered(tiny_bundle, tmp_path, flip))
    assert code == 1
    assert "EZKL rejected the proof" in err


def test_raw_byte_flip_in_bundle_fails(tiny_circuit, tiny_bundle, run_cli, tmp_path):
    data = bytearray(tiny_bundle.read_bytes())
    at = data.index(b'"hex_proof"') + 40
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    path = tmp_path / "flipped.json"
    path.write_bytes(bytes(data))
    assert run_cli("--root", tiny_circuit, "verify", path)[0] == 1


def test_tampered_score_fails(tiny_circuit, tiny_bundle, run_cli, tmp_path):
    def lower(b):
        b["score"] = 0.0 if b["score"] > 0.5 else 1.0

    code, _, err = run_cli("--root", tiny_circuit, "verify", _tampered(tiny_bundle, tmp_path, lower))
    assert code == 1 and "is not the instance's" in err


def test_bundle_for_another_vk_fails(tiny_circuit, tiny_bundle, run_cli, tmp_path):
    def other(b):
        b["model"]["vk_sha256"] = "0" * 64

    code, _, err = run_cli("--root", tiny_circuit, "verify", _tampered(tiny_bundle, tmp_path, other))
    assert code == 1 and "proven for another circuit: vk" in err


def test_verify_without_a_circuit_cannot_run(tiny_bundle, run_cli, tmp_path):
    code, _, err = run_cli("--root", tmp_path, "verify", tiny_bundle)
    assert code == 2 and "no circuit" in err


def _prove_edited_row(root, feed, run_cli, tmp_path, back: int, edit):
    """Prove the latest window of ``feed`` with ``edit(header, cells)`` applied to the row ``back`` lines
    from the end; asserts nothing was written and returns (exit code, stderr, row number)."""
    lines = feed.read_text().splitlines()
    cells = lines[-back].split(",")
    edit(lines[0].split(","), cells)
    lines[-back] = ",".join(cells)
    edited = tmp_path / "edited.csv"
    edited.write_text("\n".join(lines) + "\n")
    proofs = ArtifactLayout(root).proofs_dir
    before = sorted(proofs.glob("*.json")) if proofs.exists() else []
    code, _, err = run_cli("--root", root, "prove", "--data", edited, "--window", "latest")
    assert (sorted(proofs.glob("*.json")) if proofs.exists() else []) == before
    return code, err, len(lines) - back


def test_prove_refuses_a_window_that_fails_validation(tiny_circuit, tiny_feed, run_cli, tmp_path):
    def nan_sell_volume(header, cells):
        cells[header.index("sell_volume")] = "NaN"

    code, err, row = _prove_edited_row(tiny_circuit, tiny_feed, run_cli, tmp_path, 3, nan_sell_volume)
    assert code == 1
    assert f"row {row}" in err and "column 'sell_volume'" in err


def test_prove_refuses_a_value_outside_the_circuits_input_range(tiny_circuit, tiny_feed, run_cli, tmp_path):
    """A valid row whose magnitude SAFE range checks cannot take is refused by name, before proving."""
    settings = json.loads(ArtifactLayout(tiny_circuit).circuit_settings.read_text())["run_args"]
    limit = settings["decomp_base"] ** settings["decomp_legs"] / 2 ** settings["input_scale"]

    def huge_volumes(header, cells):
        buy, sell = header.index("buy_volume"), header.index("sell_volume")
        ratio = float(cells[buy]) / float(cells[sell])  # keep blr = buy / sell, so the row stays valid
        cells[buy], cells[sell] = f"{limit * 1.5:.1f}", f"{limit * 1.5 / ratio:.1f}"

    code, err, row = _prove_edited_row(tiny_circuit, tiny_feed, run_cli, tmp_path, 2, huge_volumes)
    assert code == 1
    assert f"row {row}, column 'buy_volume'" in err and "input range" in err
    assert len(err.strip().splitlines()) == 1


def test_prove_cli_json_and_missing_proving_key_regenerates(tiny_circuit, tiny_feed, run_cli, tmp_path):
    copy = tmp_path / "clone"
    shutil.copytree(tiny_circuit, copy, ignore=shutil.ignore_patterns("pk.key", "pk.key.build", "proofs"))
    code, out, err = run_cli("--root", copy, "prove", "--data", tiny_feed, "--window", "60", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["bundles"]
    assert set(result) >= {"score", "input_hash", "window_id", "window_end", "bundle", "prove_seconds"}
    assert (copy / "circuits" / "pk.key").exists()  # regenerated; the vk matched the manifest
    assert run_cli("--root", copy, "verify", result["bundle"])[0] == 0
    config = load_config(copy, env={})
    window_end = json.loads(Path(result["bundle"]).read_text())["window_end_unix"]
    assert result["window_id"] == window_id(window_end, config.circuit.cadence_seconds)
