"""``sentinel verify``: off-chain verification of a proof bundle.

Checks, in order, and stops at the first failure with its reason:

1. the bundle is readable JSON with the fields a bundle has;
2. it was proven for *this* circuit: its ONNX, settings, compiled-circuit and
   vk hashes equal the manifest's;
3. its instances are well-formed field elements in the documented layout;
4. the stated score and input hash are exactly what the instances encode;
5. the embedded EZKL proof carries the same instances and proof bytes;
6. EZKL verifies the proof with the vk and SRS.

A batch bundle (``"kind": "batch"``) is checked the same way against the
batch set (``circuits/batch``): every window's stated score and hash against
its instances in the batch layout, window ids consecutive and ascending, the
proof with the batch vk.

``VerifyOutcome.valid`` is False for any of these (the CLI exits 1); problems
that stop verification from running at all (no manifest, missing vk or SRS)
raise :class:`VerificationUnavailable`, a ``CircuitError`` (the CLI exits 2).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, sha256_file
from sentinel.errors import CircuitError, SentinelError
from sentinel.zk import ezkl_api
from sentinel.zk.instances import felt_from_hex, fixed_to_float
from sentinel.zk.layout import BatchInstanceLayout, InstanceLayout
from sentinel.zk.manifest import load_batch_manifest, load_manifest, srs_path

_REQUIRED = ("window_id", "window_end", "score", "input_hash", "instances", "model", "ezkl_proof", "score_scale")
_REQUIRED_BATCH = ("windows_per_proof", "windows", "instances", "model", "ezkl_proof", "score_scale")
_REQUIRED_WINDOW = ("window_id", "window_end", "window_end_unix", "input_hash", "score")


class VerificationUnavailable(CircuitError):
    """Verification could not run, as opposed to an invalid proof (an outcome, not an error)."""


@dataclass(frozen=True)
class VerifyOutcome:
    """Result of verifying one bundle."""

    bundle: Path
    valid: bool
    reason: str
    window_id: int | None = None
    score: float | None = None
    input_hash: str | None = None
    #: A batch bundle's windows (window_id, score, input_hash each); None for a single-window bundle.
    windows: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"bundle": str(self.bundle), "valid": self.valid, "reason": self.reason,
               "window_id": self.window_id, "score": self.score, "input_hash": self.input_hash}
        if self.windows is not None:
            out["windows"] = self.windows
        return out


def _invalid(path: Path, reason: str, bundle: dict[str, Any] | None = None) -> VerifyOutcome:
    b = bundle or {}
    return VerifyOutcome(path, valid=False, reason=reason, window_id=b.get("window_id"), score=b.get("score"),
                         input_hash=b.get("input_hash"))


@dataclass(frozen=True)
class _CircuitFiles:
    """The verifying side of one circuit set: its manifest, vk, settings and SRS."""

    manifest: dict[str, Any]
    vk: Path
    settings: Path
    srs: Path


def _circuit_files(layout: ArtifactLayout, *, batch: bool) -> _CircuitFiles:
    try:
        manifest = load_batch_manifest(layout) if batch else load_manifest(layout)
        vk = layout.root / manifest["artifacts"]["vk"]["path"]
        settings = layout.root / manifest["artifacts"]["settings"]["path"]
        srs = srs_path(layout, manifest)
        for needed in (vk, settings):
            if not needed.exists():
                raise CircuitError(f"{needed}: missing; run `sentinel circuit build`")
    except SentinelError as exc:
        raise VerificationUnavailable(str(exc)) from exc
    return _CircuitFiles(manifest, vk, settings, srs)


def _other_circuit(files: _CircuitFiles, model: Any) -> str | None:
    """Why a bundle's ``model`` hashes are not this circuit set's, or None if they are."""
    artifacts = files.manifest["artifacts"]
    model = model if isinstance(model, dict) else {}
    for key, artifact in (("onnx_sha256", "onnx"), ("settings_sha256", "settings"),
                          ("compiled_circuit_sha256", "compiled_circuit"), ("vk_sha256", "vk")):
        if model.get(key) != artifacts[artifact]["sha256"]:
            return (f"proven for another circuit: {artifact} sha256 {str(model.get(key))[:12]} "
                    f"!= this circuit's {artifacts[artifact]['sha256'][:12]}")
    if sha256_file(files.vk) != artifacts["vk"]["sha256"]:
        raise VerificationUnavailable(f"{files.vk}: differs from the manifest; rebuild with `sentinel circuit build`")
    return None


def _proof_problem(files: _CircuitFiles, proof: Any, instances: list[Any]) -> str | None:
    """Steps 5-6: the embedded EZKL proof carries ``instances`` and verifies; why not, or None."""
    proven = [str(f) for f in (proof.get("instances") or [[]])[0]] if isinstance(proof, dict) else None
    if proven != [str(f) for f in instances]:
        return "embedded EZKL proof carries other instances than the bundle"
    proof_bytes = proof.get("proof")
    hex_proof = str(proof.get("hex_proof", ""))
    try:
        if not isinstance(proof_bytes, list) or bytes(proof_bytes).hex() != hex_proof.removeprefix("0x"):
            return "embedded proof bytes and hex_proof disagree"
    except (ValueError, TypeError):
        return "embedded proof bytes are not bytes"
    with tempfile.TemporaryDirectory(prefix="sentinel-verify-") as tmp:
        proof_path = Path(tmp) / "proof.json"
        proof_path.write_text(json.dumps(proof))
        ok = ezkl_api.verify(proof_path, files.settings, files.vk, files.srs)
    return None if ok else "EZKL rejected the proof"


def verify_bundle(layout: ArtifactLayout, path: Path) -> VerifyOutcome:
    """Verify ``path`` against the circuit in ``layout`` (see module doc); a batch bundle against its batch set."""
    path = Path(path)
    files = _circuit_files(layout, batch=False)
    if not path.exists():
        raise VerificationUnavailable(f"{path}: bundle does not exist")
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _invalid(path, f"not a proof bundle: {exc}")
    except OSError as exc:
        raise VerificationUnavailable(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if isinstance(bundle, dict) and bundle.get("kind") == "batch":
        return _verify_batch(_circuit_files(layout, batch=True), path, bundle)
    if not isinstance(bundle, dict) or any(k not in bundle for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(bundle, dict) or k not in bundle]
        return _invalid(path, f"not a proof bundle: missing {', '.join(missing)}")
    manifest = files.manifest

    # 2. proven for this circuit
    if (other := _other_circuit(files, bundle["model"])) is not None:
        return _invalid(path, other, bundle)

    # 3-4. instances
    layout_info = InstanceLayout.from_manifest(manifest["instances"])
    instances = bundle["instances"]
    try:
        felts = [felt_from_hex(str(f)) for f in instances]
    except CircuitError as exc:
        return _invalid(path, f"bad instance: {exc}", bundle)
    if len(felts) != layout_info.total:
        return _invalid(path, f"{len(felts)} instances, the circuit has {layout_info.total}", bundle)
    decoded = fixed_to_float(felts[layout_info.score_index], layout_info.score_scale)
    if bundle["score_scale"] != layout_info.score_scale or bundle["score"] != decoded:
        return _invalid(path, f"stated score {bundle['score']} is not the instance's {decoded}", bundle)
    if bundle["input_hash"] != f"0x{felts[layout_info.input_hash_index]:064x}":
        return _invalid(path, "stated input hash is not the proof's input-hash instance", bundle)

    # 5-6. embedded proof agrees, and verifies
    if (problem := _proof_problem(files, bundle["ezkl_proof"], instances)) is not None:
        return _invalid(path, problem, bundle)
    return VerifyOutcome(path, valid=True, reason="proof verifies; score and input hash match its instances",
                         window_id=bundle["window_id"], score=bundle["score"], input_hash=bundle["input_hash"])


def _verify_batch(files: _CircuitFiles, path: Path, bundle: dict[str, Any]) -> VerifyOutcome:
    """The module doc's checks for a batch bundle, against the batch set ``files``."""
    missing = [k for k in _REQUIRED_BATCH if k not in bundle]
    windows = bundle.get("windows")
    if missing or not isinstance(windows, list) or not all(isinstance(w, dict) for w in windows):
        return _invalid(path, f"not a batch proof bundle: missing {', '.join(missing) or 'a list of windows'}")
    if (other := _other_circuit(files, bundle["model"])) is not None:
        return _invalid(path, other)
    layout = BatchInstanceLayout.from_manifest(files.manifest["instances"])
    if bundle["windows_per_proof"] != layout.windows or len(windows) != layout.windows:
        return _invalid(path, f"{len(windows)} windows ({bundle['windows_per_proof']} stated); the batch circuit "
                              f"proves {layout.windows}")
    for i, window in enumerate(windows):
        if any(k not in window for k in _REQUIRED_WINDOW):
            return _invalid(path, f"window {i}: missing {', '.join(k for k in _REQUIRED_WINDOW if k not in window)}")
    instances = bundle["instances"]
    try:
        hashes, scores = layout.split([str(f) for f in instances])
        hash_felts, score_felts = [felt_from_hex(h) for h in hashes], [felt_from_hex(s) for s in scores]
    except CircuitError as exc:
        return _invalid(path, f"bad instance: {exc}")
    if bundle["score_scale"] != layout.score_scale:
        return _invalid(path, f"score scale {bundle['score_scale']} is not the batch circuit's {layout.score_scale}")
    first = windows[0]["window_id"]
    for i, window in enumerate(windows):
        if not isinstance(window["window_id"], int) or window["window_id"] != first + i:
            return _invalid(path, f"window {i} has id {window['window_id']}, not {first} + {i}: the windows of a "
                                  "batch are consecutive and ascending")
        decoded = fixed_to_float(score_felts[i], layout.score_scale)
        if window["score"] != decoded:
            return _invalid(path, f"window {window['window_id']}: stated score {window['score']} is not instance "
                                  f"{layout.score_index(i)}'s {decoded}")
        if window["input_hash"] != f"0x{hash_felts[i]:064x}":
            return _invalid(path, f"window {window['window_id']}: stated input hash is not instance "
                                  f"{layout.hash_index(i)}")
    if (problem := _proof_problem(files, bundle["ezkl_proof"], instances)) is not None:
        return _invalid(path, problem)
    return VerifyOutcome(path, valid=True, reason=f"batch proof of {layout.windows} windows verifies; every score and "
                                                  "input hash matches its instances",
                         windows=[{k: w[k] for k in ("window_id", "score", "input_hash")} for w in windows])
