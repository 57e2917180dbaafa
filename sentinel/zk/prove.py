"""``sentinel prove``: validated rows -> window -> witness -> proof bundle.

A proof bundle is one JSON file under ``proofs/`` that carries everything a
verifier, the chain and an auditor need: the EZKL proof (verbatim), the public
instances, the decoded score, the Poseidon input hash, the window's id, end
time and rows, the float score for comparison, and the hashes of the model,
settings, compiled circuit and vk it was proven against.

A bundle's window id is :func:`sentinel.data.windows.window_id` of its end
time and the circuit's cadence.

A *batch* bundle (``proofs/batch-<first>-<last>.json``, ``"kind": "batch"``)
carries K consecutive windows proven in one proof by the batch circuit set
(``circuits/batch``, :mod:`sentinel.zk.batch`): a ``windows`` list with each
window's id, end, hash and scores, the 2K instances (hashes, then scores) and
the batch set's hashes.
"""

from __future__ import annotations

import dataclasses
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
from sentinel.zk.layout import BatchInstanceLayout, InstanceLayout
from sentinel.zk.manifest import load_batch_manifest, load_manifest, srs_path
from sentinel.zk.witness import witness_input_hash, witness_input_hashes, witness_score, witness_scores

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
class BatchProveResult:
    """K consecutive windows proven in one proof; ``windows`` are the bundle's window entries, in order."""

    bundle: Path
    windows: list[dict[str, Any]]
    prove_seconds: float

    @property
    def window_ids(self) -> list[int]:
        return [int(w["window_id"]) for w in self.windows]

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "windows": self.windows, "prove_seconds": self.prove_seconds}


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
    """Proves windows against the built circuit; reuse one for many windows (warm process).

    With the single set's layout it proves one window per proof
    (:meth:`prove_end_row`); with ``layout.batch()`` K consecutive windows per
    proof (:meth:`prove_windows`).
    """

    def __init__(self, layout: ArtifactLayout, config: SentinelConfig,
                 progress: Callable[[str, str], None] | None = None) -> None:
        self.layout = layout
        self.config = config
        self.manifest = load_batch_manifest(layout) if layout.is_batch else load_manifest(layout)
        self._check_artifacts()
        self.instances: InstanceLayout | None = None
        self.batch_instances: BatchInstanceLayout | None = None
        if layout.is_batch:
            self.batch_instances = BatchInstanceLayout.from_manifest(self.manifest["instances"])
        else:
            self.instances = InstanceLayout.from_manifest(self.manifest["instances"])
        self.window = int(self.manifest["window"])
        self.cadence = float(self.manifest["cadence_seconds"])
        self.srs = srs_path(layout, self.manifest)
        self.pk = ensure_proving_key(layout, self.manifest, progress)
        run_args = json.loads(layout.circuit_settings.read_text())["run_args"]
        self.input_range = InputRange(int(run_args["decomp_base"]), int(run_args["decomp_legs"]),
                                      int(run_args["input_scale"]))

    def _witness_and_proof(self, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any], float]:
        """EZKL's witness and proof of ``inputs`` (the circuit's input JSON), and the seconds both took."""
        with tempfile.TemporaryDirectory(prefix="sentinel-prove-") as tmp:
            work = Path(tmp)
            data, witness_path, proof_path = work / "input.json", work / "witness.json", work / "proof.json"
            data.write_text(json.dumps(inputs))
            start = time.perf_counter()
            witness = ezkl_api.gen_witness(data, self.layout.compiled_circuit, witness_path)
            ezkl_api.prove(witness_path, self.layout.compiled_circuit, self.pk, proof_path, self.srs)
            seconds = time.perf_counter() - start
            proof: dict[str, Any] = json.loads(proof_path.read_text())
        return witness, proof, seconds

    def _provenance(self) -> dict[str, Any]:
        """What a bundle records of the circuit it was proven with (its hashes) and of the SRS."""
        artifacts = self.manifest["artifacts"]
        return {
            "model": {
                "onnx_sha256": artifacts["onnx"]["sha256"],
                "settings_sha256": artifacts["settings"]["sha256"],
                "compiled_circuit_sha256": artifacts["compiled_circuit"]["sha256"],
                "vk_sha256": artifacts["vk"]["sha256"],
                "verifier_runtime_sha256": self.manifest["verifier_runtime_sha256"],
            },
            "srs_test_only": self.manifest["srs"]["warning"] is not None,
        }

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

    def _raw(self, market: MarketData, end: int) -> np.ndarray:
        """The rows of the window ending at 0-based row ``end``, float64 exactly as read, range-checked."""
        raw: np.ndarray = market.features()[end - self.window + 1 : end + 1]
        self.input_range.check(raw, end - self.window + 1)
        return raw

    def prove_end_row(self, market: MarketData, end: int, *, proofs: str | None = None) -> ProveResult:
        """Prove the window ending at 0-based row ``end``; writes its bundle (under ``proofs``, a directory
        relative to the project root, else the layout's: a market's own, see ArtifactLayout.for_market)."""
        from sentinel.model.export import onnx_scores

        if self.instances is None:
            raise CircuitError(f"{self.layout.circuits_dir}: the batch circuit proves "
                               f"{self.manifest['windows_per_proof']} windows at once (prove_windows), not one")
        windows = cut_windows(market, self.window, np.array([end]))
        raw = self._raw(market, end)
        end_unix = int(windows.end_times[0])
        wid = window_id(end_unix, self.cadence)
        window_end = pd.DatetimeIndex(market.frame["timestamp"])[end].isoformat()
        witness, proof, seconds = self._witness_and_proof(input_json(raw[None]))
        instances = [str(f) for f in proof["instances"][0]]
        score_felt = felt_from_hex(instances[self.instances.score_index])
        hash_felt = felt_from_hex(instances[self.instances.input_hash_index])
        score = fixed_to_float(score_felt, self.instances.score_scale)
        if abs(score - witness_score(witness)) > 1e-9:
            raise CircuitError(f"proof's score instance {score} disagrees with the witness {witness_score(witness)}")
        if felt_from_hex(witness_input_hash(witness)) != hash_felt:
            raise CircuitError("proof's input-hash instance disagrees with the witness")
        float_score = float(onnx_scores(self.layout.onnx_model, windows.x)[0])
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
            **self._provenance(),
            "prove_seconds": round(seconds, 3),
            "ezkl_proof": proof,
        }
        path = self._bundles(proofs).proof_bundle(wid)
        atomic_write_text(path, json.dumps(bundle, indent=1, sort_keys=True) + "\n")
        return ProveResult(path, score, float_score, bundle["input_hash"], wid, window_end, seconds)

    def _bundles(self, proofs: str | None) -> ArtifactLayout:
        """The layout bundles are written with: this one, or its ``proofs`` directory instead."""
        return self.layout if proofs is None else dataclasses.replace(self.layout, proofs=proofs)

    def prove_windows(self, market: MarketData, end_rows: list[int], *,
                      proofs: str | None = None) -> BatchProveResult:
        """Prove K consecutive windows (0-based end rows, ascending) in one batch proof; writes one batch bundle
        (under ``proofs``, as :meth:`prove_end_row`)."""
        from sentinel.model.export import onnx_scores
        from sentinel.zk.batch import batch_input_json, consecutive_end_rows

        layout = self.batch_instances
        if layout is None:
            raise CircuitError(f"{self.layout.circuits_dir}: the single circuit proves one window per proof; "
                               "prove_windows needs the batch set (ArtifactLayout.batch())")
        k = layout.windows
        rows = consecutive_end_rows(end_rows, k, self.window)
        if rows[-1] >= len(market.frame):
            raise CircuitError(f"row {rows[-1] + 1} is past the feed's last row {len(market.frame)}")
        windows = cut_windows(market, self.window, np.array(rows))
        raws = np.stack([self._raw(market, end) for end in rows])
        ends_unix = [int(t) for t in windows.end_times]
        ids = [window_id(t, self.cadence) for t in ends_unix]
        if any(wid != ids[0] + i for i, wid in enumerate(ids)):
            raise CircuitError(f"rows {rows[0] + 1}..{rows[-1] + 1} end windows {ids}: not consecutive ids at cadence "
                               f"{self.cadence:g} s (a gap or a jitter in the feed); prove them one by one")
        stamps = pd.DatetimeIndex(market.frame["timestamp"])
        witness, proof, seconds = self._witness_and_proof(batch_input_json(raws))
        instances = [str(f) for f in proof["instances"][0]]
        hashes, score_felts = layout.split(instances)
        witness_hashes, witness_values = witness_input_hashes(witness), witness_scores(witness)
        if len(witness_hashes) != k or len(witness_values) != k:
            raise CircuitError(f"batch witness has {len(witness_hashes)} hashes and {len(witness_values)} scores, "
                               f"not {k} each")
        floats = onnx_scores(self.layout.onnx_model, windows.x)
        entries: list[dict[str, Any]] = []
        for i, end in enumerate(rows):
            score = fixed_to_float(felt_from_hex(score_felts[i]), layout.score_scale)
            if abs(score - witness_values[i]) > 1e-9:
                raise CircuitError(f"batch proof's score instance {layout.score_index(i)} = {score} disagrees with "
                                   f"the witness {witness_values[i]}")
            hash_felt = felt_from_hex(hashes[i])
            if felt_from_hex(witness_hashes[i]) != hash_felt:
                raise CircuitError(f"batch proof's input-hash instance {layout.hash_index(i)} disagrees with the "
                                   "witness")
            entries.append({"window_id": ids[i], "window_end": stamps[end].isoformat(), "window_end_unix": ends_unix[i],
                            "window_end_row": end + 1, "input_hash": f"0x{hash_felt:064x}", "score": score,
                            "float_score": float(floats[i])})
        bundle = {
            "bundle_version": BUNDLE_VERSION,
            "kind": "batch",
            "windows_per_proof": k,
            "windows": entries,
            "instances": instances,
            "instance_layout": self.manifest["instances"],
            "score_scale": layout.score_scale,
            "window_rows": self.window,
            "data_source": str(market.source) if market.source else None,
            **self._provenance(),
            "prove_seconds": round(seconds, 3),
            "ezkl_proof": proof,
        }
        path = self._bundles(proofs).batch_bundle(ids[0], ids[-1])
        atomic_write_text(path, json.dumps(bundle, indent=1, sort_keys=True) + "\n")
        return BatchProveResult(path, entries, seconds)
