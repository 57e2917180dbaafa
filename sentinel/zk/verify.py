"""``sentinel verify``: off-chain verification of a proof bundle.

Checks, in order, and stops at the first failure with its reason:

1. the bundle is readable JSON with the fields a bundle has;
2. it was proven for *this* circuit: its ONNX, settings, compiled-circuit and
   vk hashes equal the manifest's;
3. its instances are well-formed field elements in the documented layout;
4. the stated score and input hash are exactly what the instances encode;
5. the embedded EZKL proof carries the same instances and proof bytes;
6. EZKL verifies the proof with the vk and SRS.

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
from sentinel.zk.layout import InstanceLayout
from sentinel.zk.manifest import load_manifest, srs_path

_REQUIRED = ("window_id", "window_end", "score", "input_hash", "instances", "model", "ezkl_proof", "score_scale")


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

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "valid": self.valid, "reason": self.reason,
                "window_id": self.window_id, "score": self.score, "input_hash": self.input_hash}


def _invalid(path: Path, reason: str, bundle: dict[str, Any] | None = None) -> VerifyOutcome:
    b = bundle or {}
    return VerifyOutcome(path, valid=False, reason=reason, window_id=b.get("window_id"), score=b.get("score"),
                         input_hash=b.get("input_hash"))


def verify_bundle(layout: ArtifactLayout, path: Path) -> VerifyOutcome:
    """Verify ``path`` against the circuit in ``layout`` (see module doc)."""
    path = Path(path)
    try:
        manifest = load_manifest(layout)
        vk = layout.root / manifest["artifacts"]["vk"]["path"]
        settings = layout.root / manifest["artifacts"]["settings"]["path"]
        srs = srs_path(layout, manifest)
        for needed in (vk, settings):
            if not needed.exists():
                raise CircuitError(f"{needed}: missing; run `sentinel circuit build`")
    except SentinelError as exc:
        raise VerificationUnavailable(str(exc)) from exc
    if not path.exists():
        raise VerificationUnavailable(f"{path}: bundle does not exist")
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _invalid(path, f"not a proof bundle: {exc}")
    except OSError as exc:
        raise VerificationUnavailable(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not isinstance(bundle, dict) or any(k not in bundle for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(bundle, dict) or k not in bundle]
        return _invalid(path, f"not a proof bundle: missing {', '.join(missing)}")

    # 2. proven for this circuit
    model = bundle["model"]
    for key, artifact in (("onnx_sha256", "onnx"), ("settings_sha256", "settings"),
                          ("compiled_circuit_sha256", "compiled_circuit"), ("vk_sha256", "vk")):
        if model.get(key) != manifest["artifacts"][artifact]["sha256"]:
            return _invalid(path, f"proven for another circuit: {artifact} sha256 {str(model.get(key))[:12]} "
                                  f"!= this circuit's {manifest['artifacts'][artifact]['sha256'][:12]}", bundle)
    if sha256_file(vk) != manifest["artifacts"]["vk"]["sha256"]:
        raise VerificationUnavailable(f"{vk}: differs from the manifest; rebuild with `sentinel circuit build`")

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

    # 5. embedded proof agrees
    proof = bundle["ezkl_proof"]
    proven = [str(f) for f in (proof.get("instances") or [[]])[0]] if isinstance(proof, dict) else None
    if proven != [str(f) for f in instances]:
        return _invalid(path, "embedded EZKL proof carries other instances than the bundle", bundle)
    proof_bytes = proof.get("proof")
    hex_proof = str(proof.get("hex_proof", ""))
    try:
        if not isinstance(proof_bytes, list) or bytes(proof_bytes).hex() != hex_proof.removeprefix("0x"):
            return _invalid(path, "embedded proof bytes and hex_proof disagree", bundle)
    except (ValueError, TypeError):
        return _invalid(path, "embedded proof bytes are not bytes", bundle)

    # 6. the proof itself
    with tempfile.TemporaryDirectory(prefix="sentinel-verify-") as tmp:
        proof_path = Path(tmp) / "proof.json"
        proof_path.write_text(json.dumps(proof))
        ok = ezkl_api.verify(proof_path, settings, vk, srs)
    if not ok:
        return _invalid(path, "EZKL rejected the proof", bundle)
    return VerifyOutcome(path, valid=True, reason="proof verifies; score and input hash match its instances",
                         window_id=bundle["window_id"], score=bundle["score"], input_hash=bundle["input_hash"])
