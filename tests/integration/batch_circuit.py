"""A tiny batch artifact set for the contract tests: K copies of the tiny model in one circuit, real batch proofs.

Built the way ``scripts/gas_sweep.py`` builds its ``batch_k<K>`` variants
(``batched_onnx`` on the tiny model's ONNX; EZKL gen_settings at the single
circuit's scales without calibration, logrows from the rows and the
range-check table, compile, a test SRS, setup, prove, render the verifier)
into ``circuits/batch/`` with the files deploy reads (manifest with
``windows_per_proof``, ``Halo2Verifier.json``). The zk side's batch build
(``sentinel circuit build`` with ``circuit.batch_windows``, and
``Prover.prove_windows``) replaces this once merged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, sha256_file
from sentinel.chain.deploy import batch_layout
from sentinel.chain.encoding import BatchBundle, ProofBundle, read_batch_bundle
from sentinel.config import load_config

ROOT = Path(__file__).resolve().parents[2]
RESERVED_ROWS = 32  # as scripts/gas_sweep.py and sentinel.zk.build


@dataclass(frozen=True)
class BatchSet:
    """The built batch set (``root/circuits/batch``) and batch bundles keyed by their windows' labels ("HL": the
    high window, then the low one)."""

    root: Path
    windows: int
    bundles: dict[str, BatchBundle]


def _gas_sweep() -> Any:
    spec = importlib.util.spec_from_file_location("gas_sweep", ROOT / "scripts" / "gas_sweep.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_batch_set(tiny: Path, feed: Path, singles: dict[str, ProofBundle], labels: list[str], root: Path,
                    ) -> BatchSet:
    """Build the K-window batch circuit of the tiny model under ``root`` and prove each label string's windows
    (``H``/``L``: the windows of ``singles["high"]``/``singles["low"]``), K = the labels' length."""
    import numpy as np

    from sentinel.data.io import read_market_csv
    from sentinel.toolchain.solc import compile_files
    from sentinel.zk import ezkl_api
    from sentinel.zk.build import check_verifier_source
    from sentinel.zk.instances import felt_from_hex

    k = len(labels[0])
    config = load_config(tiny, env={})
    c = config.circuit
    single_layout, layout = ArtifactLayout(tiny), batch_layout(ArtifactLayout(root))
    work = layout.circuits_dir
    work.mkdir(parents=True)
    onnx, settings, compiled = work / "model.onnx", layout.circuit_settings, layout.compiled_circuit
    _gas_sweep().batched_onnx(single_layout.onnx_model, onnx, k)
    single_run = json.loads(single_layout.circuit_settings.read_text())["run_args"]
    args = ezkl_api.run_args(c.input_visibility, c.param_visibility, c.output_visibility, c.check_mode,
                             c.num_inner_cols, c.decomp_base, c.decomp_legs)
    args.input_scale = int(single_run["input_scale"])
    args.param_scale = int(single_run["param_scale"])
    ezkl_api.gen_settings(onnx, settings, args)
    doc = json.loads(settings.read_text())
    table = int(doc["run_args"]["decomp_base"]) if str(doc["run_args"]["check_mode"]).upper() == "SAFE" else 0
    logrows = math.ceil(math.log2(max(int(doc["num_rows"]), table) + RESERVED_ROWS))
    doc["run_args"]["logrows"] = logrows
    settings.write_text(json.dumps(doc))
    ezkl_api.compile_circuit(onnx, compiled, settings)
    srs = layout.test_srs(logrows)
    ezkl_api.gen_srs(srs, logrows)
    ezkl_api.setup(compiled, layout.vk, layout.pk, srs)
    complaint = ezkl_api.render_evm_verifier(layout.vk, settings, layout.verifier_sol, work / "abi.json", srs)
    check_verifier_source(layout.verifier_sol, complaint)
    verifier = compile_files([layout.verifier_sol], optimizer_runs=c.optimizer_runs)["Halo2Verifier"]
    layout.verifier_artifact.write_text(json.dumps({
        "contractName": "Halo2Verifier", "abi": verifier.abi, "bytecode": "0x" + verifier.bytecode.hex(),
        "deployedBytecode": "0x" + verifier.runtime.hex(), "compiler": verifier.compiler}))
    single_manifest = json.loads(single_layout.circuit_manifest.read_text())
    scale = int(single_manifest["instances"]["score_scale"])
    manifest = {
        "windows_per_proof": k, "cadence_seconds": single_manifest["cadence_seconds"],
        "window": single_manifest["window"],
        "instances": {"total": 2 * k, "score_scale": scale,
                      "description": f"instances[0][i] = hash of window i, instances[0][{k}+i] = its score felt"},
        "artifacts": {"vk": {"path": str(layout.vk.relative_to(root)), "sha256": sha256_file(layout.vk)}},
        "verifier_runtime_sha256": hashlib.sha256(verifier.runtime).hexdigest(),
        "verifier_runtime_bytes": len(verifier.runtime),
    }
    layout.circuit_manifest.write_text(json.dumps(manifest, indent=1))

    market = read_market_csv(feed)
    window = int(single_manifest["window"])
    picked = {"H": singles["high"], "L": singles["low"]}
    docs = {label: json.loads(b.path.read_text()) for label, b in picked.items()}
    rows = {label: market.features()[d["window_end_row"] - window:d["window_end_row"]] for label, d in docs.items()}
    bundles = {}
    for name in labels:
        data, witness, proof_path = work / f"{name}.input.json", work / f"{name}.witness.json", work / f"{name}.proof"
        data.write_text(json.dumps({"input_data": [np.asarray(rows[x], dtype=np.float64).reshape(-1).tolist()
                                                   for x in name]}))
        ezkl_api.gen_witness(data, compiled, witness)
        ezkl_api.prove(witness, compiled, layout.pk, proof_path, srs)
        proof = json.loads(proof_path.read_text())
        felts = [felt_from_hex(str(f)) for f in proof["instances"][0]]
        # The batch circuit's layout: K hashes, then K scores, each equal to the single circuit's for its window.
        assert felts == [picked[x].input_hash for x in name] + [picked[x].score_felt for x in name], name
        bundle = {
            "bundle_version": 1, "kind": "batch", "windows_per_proof": k,
            "windows": [{key: docs[x][key] for key in ("window_id", "window_end", "window_end_unix", "window_end_row",
                                                       "input_hash", "score", "float_score")} for x in name],
            "instances": proof["instances"][0], "score_scale": scale, "window_rows": window,
            "model": {"vk_sha256": manifest["artifacts"]["vk"]["sha256"],
                      "verifier_runtime_sha256": manifest["verifier_runtime_sha256"]},
            "srs_test_only": True, "ezkl_proof": proof,
        }
        path = root / "proofs" / f"batch-{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(bundle))
        bundles[name] = read_batch_bundle(path)
    return BatchSet(root, k, bundles)


def chain_project(tiny: Path, batch: BatchSet | None, root: Path) -> Path:
    """A project with the tiny circuit's manifest and verifier (and the batch set's, named by the single
    manifest's ``batch`` entry as the circuit build records it): what ``deploy`` reads."""
    (root / "circuits").mkdir(parents=True)
    shutil.copy(tiny / "circuits" / "Halo2Verifier.json", root / "circuits" / "Halo2Verifier.json")
    manifest = json.loads((tiny / "circuits" / "manifest.json").read_text())
    manifest["batch"] = None
    if batch is not None:
        target = batch_layout(ArtifactLayout(root)).circuits_dir
        target.mkdir(parents=True)
        for name in ("manifest.json", "Halo2Verifier.json"):
            shutil.copy(batch_layout(ArtifactLayout(batch.root)).circuits_dir / name, target / name)
        manifest["batch"] = {"windows": batch.windows, "manifest": "circuits/batch/manifest.json"}
    (root / "circuits" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
