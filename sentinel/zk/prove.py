"""``sentinel prove``: validated rows -> window -> witness -> proof bundle.

A proof bundle is one JSON file under ``proofs/`` that carries everything a
verifier, the chain and an auditor need: the EZKL proof (verbatim), the public
instances, the decoded score, the Poseidon input hash, the window's id, end
time and rows, the float score for comparison, and the hashes of the model,
settings, compiled circuit and vk it was proven against.

A bundle's window id is :func:`sentinel.data.windows.window_id` of its end
time and the circuit's cadence.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentinel.artifacts import ArtifactLayout, atomic_write_text, sha256_file
from sentinel.config import SentinelConfig
from sentinel.data import schema
from sentinel.data.validate import MarketData
from sentinel.data.windows import cut_windows, resolve_window, window_id
from sentinel.errors import CircuitError
from sentinel.zk import ezkl_api
from sentinel.zk.build import input_json
from sentinel.zk.instances import felt_from_hex, fixed_to_float
from sentinel.zk.layout import InstanceLayout
from sentinel.zk.manifest import load_manifest, srs_path
from sentinel.zk.witness import witness_input_hash, witness_score

BUNDLE_VERSION = 1


def ensure_proving_key(layout: ArtifactLayout, manifest: dict[str, Any],
                       progress: Callable[[str, str], None] | None = None) -> Path:
    """The proving key; regenerated from the built circuit and SRS if absent or stale.

    The pk (hundreds of MB) is the one circuit artifact the manifest does not
    hash. Key generation is deterministic for a given circuit and SRS, so the
    regenerated vk must equal the manifest's, which is checked. A sidecar
    records which build a pk belongs to.
    """
    stamp = layout.pk.with_name(layout.pk.name + ".build")
    if layout.pk.exists() and stamp.exists() and stamp.read_text().strip() == manifest["input_key"]:
        return layout.pk
    if progress:
        progress("setup", "proving key missing or stale: regenerating it from the circuit and SRS")
    with tempfile.TemporaryDirectory(prefix="sentinel-setup-", dir=layout.circuits_dir) as tmp:
        vk = Path(tmp) / "vk.key"
        pk = Path(tmp) / "pk.key"
        ezkl_api.setup(layout.compiled_circuit, vk, pk, srs_path(layout, manifest))
        if sha256_file(vk) != manifest["artifacts"]["vk"]["sha256"]:
            raise CircuitError("regenerated vk differs from the manifest's; rebuild with `sentinel circuit build`")
        pk.replace(layout.pk)
    atomic_write_text(stamp, manifest["input_key"] + "\n")
    return layout.pk


@dataclass(frozen=True)
class ProveResult:
    """One proven window."""

    bundle: Path
    score: float
    float_score: float
    input_hash: str
    window_id: int
    window_end: str
    prove_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "float_score": self.float_score, "input_hash": self.input_hash,
            "window_id": self.window_id, "window_end": self.window_end, "bundle": str(self.bundle),
            "prove_seconds": self.prove_seconds,
        }


@dataclass(frozen=True)
class InputRange:
    """The magnitudes the circuit can take in: SAFE mode range-checks every quantised input value.

    EZKL decomposes each input felt into ``legs`` digits of ``base`` and a
    sign, so ``|round(value * 2**scale)|`` must stay below ``base**legs``
    (the default 16,000^2 at scale 10: raw values below 250,000). A window with a larger
    value has no proof; it is refused here, by name, before any work.
    """

    base: int
    legs: int
    scale: int

    @property
    def limit(self) -> float:
        return float(self.base**self.legs) / 2.0**self.scale

    def check(self, raw: np.ndarray, first_row: int) -> None:
        """Refuse ``raw`` (a window's rows, the first being 0-based data row ``first_row``) if a value is too large."""
        quantised = np.abs(np.round(raw * 2.0**self.scale))
        bad = np.argwhere(quantised >= self.base**self.legs)
        if len(bad):
            row, col = (int(v) for v in bad[0])
            name = schema.FEATURES[col]
            raise CircuitError(
                f"row {first_row + row + 1}, column '{name}' = {raw[row, col]:g}: outside the circuit's input range "
                f"(|value| < {self.limit:g}: range checks of {self.base}^{self.legs} at scale {self.scale}); "
                f"this window cannot be proven"
            )


class Prover:
    """Proves windows against the built circuit; reuse one for many windows (warm process)."""

    def __init__(self, layout: ArtifactLayout, config: SentinelConfig,
                 progress: Callable[[str, str], None] | None = None) -> None:
        self.layout = layout
        self.config = config
        self.manifest = load_manifest(layout)
        self._check_artifacts()
        self.instances = InstanceLayout.from_manifest(self.manifest["instances"])
        self.window = int(self.manifest["window"])
        self.cadence = float(self.manifest["cadence_seconds"])
        self.srs = srs_path(layout, self.manifest)
        self.pk = ensure_proving_key(layout, self.manifest, progress)
        run_args = json.loads(layout.circuit_settings.read_text())["run_args"]
        self.input_range = InputRange(int(run_args["decomp_base"]), int(run_args["decomp_legs"]),
                                      int(run_args["input_scale"]))

    def _check_artifacts(self) -> None:
        for name, entry in self.manifest["artifacts"].items():
            path = self.layout.root / entry["path"]
            if not path.exists():
                raise CircuitError(f"{path}: circuit artifact '{name}' is missing; run `sentinel circuit build`")
            if sha256_file(path) != entry["sha256"]:
                raise CircuitError(
                    f"{path}: '{name}' changed since the circuit was built; run `sentinel circuit build`"
                )

    def prove(self, market: MarketData, spec: str) -> ProveResult:
        """Prove the window named by ``spec`` (``latest``, a row number or a timestamp)."""
        end = resolve_window(market, spec, self.window)
        return self.prove_end_row(market, end)

    def prove_end_row(self, market: MarketData, end: int) -> ProveResult:
        """Prove the window ending at 0-based row ``end``; writes its bundle."""
        from sentinel.model.export import onnx_scores

        windows = cut_windows(market, self.window, np.array([end]))
        raw = market.features()[end - self.window + 1 : end + 1]  # float64, exactly as read
        self.input_range.check(raw, end - self.window + 1)
        end_unix = int(windows.end_times[0])
        wid = window_id(end_unix, self.cadence)
        window_end = pd.DatetimeIndex(market.frame["timestamp"])[end].isoformat()
        with tempfile.TemporaryDirectory(prefix="sentinel-prove-") as tmp:
            work = Path(tmp)
            data, witness_path, proof_path = work / "input.json", work / "witness.json", work / "proof.json"
            data.write_text(json.dumps(input_json(raw[None])))
            start = time.perf_counter()
            witness = ezkl_api.gen_witness(data, self.layout.compiled_circuit, witness_path)
            ezkl_api.prove(witness_path, self.layout.compiled_circuit, self.pk, proof_path, self.srs)
            seconds = time.perf_counter() - start
            proof = json.loads(proof_path.read_text())
        instances = [str(f) for f in proof["instances"][0]]
        score_felt = felt_from_hex(instances[self.instances.score_index])
        hash_felt = felt_from_hex(instances[self.instances.input_hash_index])
        score = fixed_to_float(score_felt, self.instances.score_scale)
        if abs(score - witness_score(witness)) > 1e-9:
            raise CircuitError(f"proof's score instance {score} disagrees with the witness {witness_score(witness)}")
        if felt_from_hex(witness_input_hash(witness)) != hash_felt:
            raise CircuitError("proof's input-hash instance disagrees with the witness")
        float_score = float(onnx_scores(self.layout.onnx_model, windows.x)[0])
        artifacts = self.manifest["artifacts"]
        bundle = {
            "bundle_version": BUNDLE_VERSION,
            "window_id": wid,
            "window_end": window_end,
            "window_end_unix": end_unix,
            "window_end_row": int(end) + 1,
            "window_rows": self.window,
            "data_source": str(market.source) if market.source else None,
            "score": score,
            "float_score": float_score,
            "score_scale": self.instances.score_scale,
            "input_hash": f"0x{hash_felt:064x}",
            "instances": instances,
            "instance_layout": self.manifest["instances"],
            "model": {
                "onnx_sha256": artifacts["onnx"]["sha256"],
                "settings_sha256": artifacts["settings"]["sha256"],
                "compiled_circuit_sha256": artifacts["compiled_circuit"]["sha256"],
                "vk_sha256": artifacts["vk"]["sha256"],
                "verifier_runtime_sha256": self.manifest["verifier_runtime_sha256"],
            },
            "srs_test_only": self.manifest["srs"]["warning"] is not None,
            "prove_seconds": round(seconds, 3),
            "ezkl_proof": proof,
        }
        path = self.layout.proof_bundle(wid)
        atomic_write_text(path, json.dumps(bundle, indent=1, sort_keys=True) + "\n")
        return ProveResult(path, score, float_score, bundle["input_hash"], wid, window_end, seconds)
