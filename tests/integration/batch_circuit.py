"""Batch proofs for the contract tests: the tiny project's batch circuit (built with its single circuit by
``sentinel circuit build``), proving chosen window pairs.

The contract tests need batches of given windows (a high one, a low one, the
same one twice) whatever their place in a feed, so this proves them with
EZKL directly instead of ``Prover.prove_windows`` (which takes consecutive
rows only).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sentinel.artifacts import ArtifactLayout
from sentinel.chain.encoding import BatchBundle, ProofBundle, read_batch_bundle


@dataclass(frozen=True)
class BatchSet:
    """The batch set (``root/circuits/batch``) and batch bundles keyed by their windows' labels ("HL": the
    high window, then the low one)."""

    root: Path
    windows: int
    bundles: dict[str, BatchBundle]


def build_batch_set(tiny: Path, feed: Path, singles: dict[str, ProofBundle], labels: list[str], root: Path,
                    ) -> BatchSet:
    """Prove each label string's windows (``H``/``L``: the windows of ``singles["high"]``/``singles["low"]``) with
    the tiny project's batch circuit; bundles under ``root``."""
    import numpy as np

    from sentinel.data.io import read_market_csv
    from sentinel.zk import ezkl_api
    from sentinel.zk.instances import felt_from_hex
    from sentinel.zk.manifest import load_batch_manifest, srs_path

    layout = ArtifactLayout(tiny).batch()
    manifest = load_batch_manifest(layout)
    k = int(manifest["windows_per_proof"])
    assert all(len(name) == k for name in labels), (labels, k)
    compiled, srs = layout.compiled_circuit, srs_path(layout, manifest)
    scale = int(manifest["instances"]["score_scale"])
    single_manifest = json.loads(ArtifactLayout(tiny).circuit_manifest.read_text())
    work = root / "work"
    work.mkdir(parents=True)
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
    return BatchSet(tiny, k, bundles)


def chain_project(tiny: Path, batch: BatchSet | None, root: Path) -> Path:
    """A project with the tiny circuit's manifest and verifier (and the batch set's, named by the single
    manifest's ``batch`` entry as the circuit build records it): what ``deploy`` reads."""
    (root / "circuits").mkdir(parents=True)
    shutil.copy(tiny / "circuits" / "Halo2Verifier.json", root / "circuits" / "Halo2Verifier.json")
    manifest = json.loads((tiny / "circuits" / "manifest.json").read_text())
    manifest["batch"] = None
    if batch is not None:
        target = ArtifactLayout(root).batch().circuits_dir
        target.mkdir(parents=True)
        for name in ("manifest.json", "Halo2Verifier.json"):
            shutil.copy(ArtifactLayout(batch.root).batch().circuits_dir / name, target / name)
        manifest["batch"] = {"windows": batch.windows, "manifest": "circuits/batch/manifest.json"}
    (root / "circuits" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
