"""Published artifacts the auditor trusts: model/circuit sets and the breaker's source.

An *artifact set* is a project directory (or its ``circuits/``) holding a
circuit manifest and the files it names. For each set the auditor checks the
manifest's hash chain (every file's sha256: ONNX -> settings -> compiled
circuit -> vk -> verifier source and artifact), then re-renders the Solidity
verifier from the vk with EZKL, compiles it with the pinned npm solc and
hashes the runtime code: that hash, not anything the operator states, is what
a deployed verifier is matched against. The verifier has no immutables and
is compiled without a metadata hash, so runtime code compares byte for byte.

The compiled circuit is not reproducible byte for byte (EZKL serialises hash
maps in arbitrary order), and regenerating the vk needs a full key setup, so
those two links are checked through their recorded hashes only.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, sha256_file
from sentinel.audit.findings import Finding, discrepancy
from sentinel.errors import AuditArtifactsError, CircuitError, SentinelError
from sentinel.toolchain.solc import CompiledContract, compile_files, compile_sources
from sentinel.zk.manifest import load_batch_manifest, load_manifest, srs_file

#: Manifest entries an audit needs on disk (the rest are checked when present).
REQUIRED = ("settings", "compiled_circuit", "vk")
#: solc optimizer runs of the verifier when the set has no Halo2Verifier.json recording them.
DEFAULT_VERIFIER_RUNS = 1


@dataclass
class ArtifactSet:
    """One published model: its manifest and the paths the audit uses."""

    root: Path
    manifest: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    runtime: bytes | None = None  #: verifier runtime code re-rendered from this set's vk
    #: the same model's batch circuit (K windows per proof, ``circuits/batch/``), when the build made one
    batch: ArtifactSet | None = None

    @property
    def windows_per_proof(self) -> int:
        return int(self.manifest.get("windows_per_proof", 1))

    @property
    def name(self) -> str:
        k = self.windows_per_proof
        return str(self.root) if k == 1 else f"{self.root} (batch circuit, {k} windows per proof)"

    def path(self, artifact: str) -> Path:
        relative: str = self.manifest["artifacts"][artifact]["path"]
        return self.root / relative

    @property
    def vk(self) -> Path:
        return self.path("vk")

    @property
    def settings(self) -> Path:
        return self.path("settings")

    @property
    def compiled(self) -> Path:
        return self.path("compiled_circuit")

    @property
    def onnx(self) -> Path:
        return self.path("onnx")

    @property
    def srs(self) -> Path:
        return srs_file(self.root, self.manifest)

    @property
    def cadence(self) -> float:
        return float(self.manifest["cadence_seconds"])

    @property
    def window(self) -> int:
        return int(self.manifest["window"])

    @property
    def instances(self) -> dict[str, Any]:
        layout: dict[str, Any] = self.manifest["instances"]
        return layout

    @property
    def vk_sha256(self) -> str:
        sha: str = self.manifest["artifacts"]["vk"]["sha256"]
        return sha

    @property
    def runtime_sha256(self) -> str | None:
        return hashlib.sha256(self.runtime).hexdigest() if self.runtime is not None else None

    def summary(self) -> dict[str, Any]:
        out = {"root": str(self.root), "vk_sha256": self.vk_sha256,
               "onnx_sha256": self.manifest["artifacts"]["onnx"]["sha256"],
               "verifier_runtime_sha256": self.runtime_sha256,
               "srs_test_only": self.manifest["srs"].get("warning") is not None}
        if self.batch is not None:
            out["batch"] = {"windows_per_proof": self.batch.windows_per_proof, "vk_sha256": self.batch.vk_sha256,
                            "verifier_runtime_sha256": self.batch.runtime_sha256}
        return out


def resolve_root(directory: Path) -> Path:
    """The project root of an artifact directory: DIR with ``circuits/manifest.json``, or DIR = ``circuits/``."""
    directory = Path(directory).resolve()
    for root in (directory, directory.parent):
        layout = ArtifactLayout(root)
        if directory in (root, layout.circuits_dir) and layout.circuit_manifest.is_file():
            return root
    raise AuditArtifactsError(directory, "no circuits/manifest.json (nor manifest.json) here",
                              hint="pass --artifacts with a project directory holding the published circuit")


def load_set(directory: Path) -> ArtifactSet:
    """Read a set's manifest and check its hash chain; missing needed files cannot be audited (exit 2)."""
    root = resolve_root(directory)
    manifest_path = ArtifactLayout(root).circuit_manifest
    try:
        manifest = load_manifest(ArtifactLayout(root))
        for key in ("artifacts", "srs", "cadence_seconds", "window", "instances"):  # every key the audit reads
            manifest[key]
        manifest["srs"]["path"], manifest["instances"]["score_scale"]
    except (CircuitError, KeyError, TypeError) as exc:
        cause = exc.__cause__ if isinstance(exc, CircuitError) and exc.__cause__ is not None else exc
        raise AuditArtifactsError(manifest_path, f"unreadable circuit manifest: {cause}") from exc
    art = _checked(ArtifactSet(root, manifest))
    if manifest.get("batch"):
        try:
            batch_manifest = load_batch_manifest(ArtifactLayout(root))
        except CircuitError as exc:
            raise AuditArtifactsError(ArtifactLayout(root).batch().circuit_manifest,
                                      f"unreadable batch circuit manifest: {exc}") from exc
        art.batch = _checked(ArtifactSet(root, batch_manifest))
    return art


def _checked(art: ArtifactSet) -> ArtifactSet:
    """``art`` with its needed files present (else exit 2) and its hash chain checked."""
    artifacts = art.manifest["artifacts"]
    for name in REQUIRED:
        if name not in artifacts or not art.path(name).is_file():
            raise AuditArtifactsError(art.root / artifacts.get(name, {}).get("path", name),
                                      f"artifact '{name}' is missing")
    if not art.srs.is_file():
        raise AuditArtifactsError(art.srs, "the SRS the circuit was set up with is missing",
                                  hint="the verifier cannot be re-rendered nor proofs verified without it")
    art.findings.extend(hash_chain(art))
    return art


def hash_chain(art: ArtifactSet) -> list[Finding]:
    """Every manifest entry present on disk must have its recorded sha256 (and the SRS its own)."""
    found = []
    for name, entry in art.manifest["artifacts"].items():
        path = art.root / entry["path"]
        if not path.is_file():
            if name in ("onnx", "verifier_source", "verifier_artifact"):
                found.append(discrepancy("artifact-hashes", f"{art.name}: '{name}' ({entry['path']}) is not published"))
            continue
        if sha256_file(path) != entry["sha256"]:
            found.append(discrepancy("artifact-hashes", f"{art.name}: {entry['path']} differs from the manifest's "
                                                        f"sha256 ({name})"))
    srs_sha = art.manifest["srs"].get("sha256")
    if srs_sha and sha256_file(art.srs) != srs_sha:
        found.append(discrepancy("artifact-hashes",
                                 f"{art.name}: SRS {art.srs.name} differs from the manifest's sha256"))
    return found


def render_verifier(art: ArtifactSet) -> list[Finding]:
    """Re-render the verifier from the set's vk and compile it; sets ``art.runtime``; findings if it disagrees."""
    from sentinel.zk import ezkl_api
    from sentinel.zk.build import check_verifier_source

    runs = DEFAULT_VERIFIER_RUNS
    published: dict[str, Any] | None = None
    artifact_entry = art.manifest["artifacts"].get("verifier_artifact", {})
    artifact_path = art.root / artifact_entry.get("path", "circuits/Halo2Verifier.json")
    if artifact_path.is_file():
        try:
            published = json.loads(artifact_path.read_text(encoding="utf-8"))
            runs = int(published.get("optimizer_runs", runs))
        except (OSError, ValueError) as exc:
            raise AuditArtifactsError(artifact_path, f"unreadable verifier artifact: {exc}") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="sentinel-audit-verifier-") as tmp:
            sol = Path(tmp) / "Halo2Verifier.sol"
            abi = Path(tmp) / "Halo2Verifier.abi"
            complaint = ezkl_api.render_evm_verifier(art.vk, art.settings, sol, abi, art.srs)
            check_verifier_source(sol, complaint)
            compiled = compile_files([sol], optimizer_runs=runs)
    except SentinelError as exc:
        raise AuditArtifactsError(art.vk, f"cannot re-render the verifier from this vk: {exc}") from exc
    runtime = compiled["Halo2Verifier"].runtime
    art.runtime = runtime
    runtime_sha = hashlib.sha256(runtime).hexdigest()
    found = []
    if runtime_sha != art.manifest.get("verifier_runtime_sha256"):
        found.append(discrepancy("verifier-render", f"{art.name}: the vk renders a verifier whose runtime sha256 "
                                                    f"{runtime_sha[:12]} is not the manifest's "
                                                    f"{str(art.manifest.get('verifier_runtime_sha256'))[:12]}"))
    if published is not None and published.get("deployedBytecode", "").removeprefix("0x") != runtime.hex():
        found.append(discrepancy("verifier-render", f"{art.name}: published Halo2Verifier.json runtime code is not "
                                                    "what the vk renders"))
    return found


def compile_breaker(source: Path, optimizer_runs: int) -> CompiledContract:
    """Compile ``SentinelBreaker.sol`` as ``sentinel deploy`` does (ABI, runtime code, the immutables' positions)."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditArtifactsError(Path(source), f"cannot read the breaker source: {exc.strerror or exc}") from exc
    try:
        return compile_sources({Path(source).name: text}, optimizer_runs=optimizer_runs)["SentinelBreaker"]
    except (SentinelError, KeyError) as exc:
        raise AuditArtifactsError(Path(source), f"cannot compile SentinelBreaker: {exc}") from exc


def mask_immutables(code: bytes, spans: tuple[tuple[int, int], ...]) -> bytes:
    """``code`` with every immutable's bytes zeroed, as solc leaves them in the compiled runtime code."""
    out = bytearray(code)
    for start, length in spans:
        if start + length <= len(out):
            out[start:start + length] = bytes(length)
    return bytes(out)


def immutable_values(code: bytes, spans: tuple[tuple[int, int], ...]) -> set[int]:
    """The distinct 32-byte values found at the immutables' positions."""
    return {int.from_bytes(code[s:s + n], "big") for s, n in spans if s + n <= len(code)}
