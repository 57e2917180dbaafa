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

from sentinel.audit.findings import Finding, discrepancy
from sentinel.errors import AuditArtifactsError, SentinelError

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

    @property
    def name(self) -> str:
        return str(self.root)

    def path(self, artifact: str) -> Path:
        return self.root / self.manifest["artifacts"][artifact]["path"]

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
        p = Path(self.manifest["srs"]["path"])
        return p if p.is_absolute() else self.root / p

    @property
    def cadence(self) -> float:
        return float(self.manifest["cadence_seconds"])

    @property
    def window(self) -> int:
        return int(self.manifest["window"])

    @property
    def instances(self) -> dict[str, Any]:
        return self.manifest["instances"]

    @property
    def vk_sha256(self) -> str:
        return self.manifest["artifacts"]["vk"]["sha256"]

    @property
    def runtime_sha256(self) -> str | None:
        return hashlib.sha256(self.runtime).hexdigest() if self.runtime is not None else None

    def summary(self) -> dict[str, Any]:
        return {"root": str(self.root), "vk_sha256": self.vk_sha256, "onnx_sha256": self.manifest["artifacts"]["onnx"]["sha256"],
                "verifier_runtime_sha256": self.runtime_sha256, "srs_test_only": self.manifest["srs"].get("warning") is not None}


def resolve_root(directory: Path) -> Path:
    """The project root of an artifact directory: DIR with ``circuits/manifest.json``, or DIR = ``circuits/``."""
    directory = Path(directory).resolve()
    if (directory / "circuits" / "manifest.json").is_file():
        return directory
    if (directory / "manifest.json").is_file():
        return directory.parent
    raise AuditArtifactsError(directory, "no circuits/manifest.json (nor manifest.json) here",
                              hint="pass --artifacts with a project directory holding the published circuit")


def load_set(directory: Path) -> ArtifactSet:
    """Read a set's manifest and check its hash chain; missing needed files cannot be audited (exit 2)."""
    root = resolve_root(directory)
    manifest_path = root / "circuits" / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        artifacts = manifest["artifacts"]
        manifest["srs"]["path"], manifest["cadence_seconds"], manifest["window"], manifest["instances"]["score_scale"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AuditArtifactsError(manifest_path, f"unreadable circuit manifest: {exc}") from exc
    art = ArtifactSet(root, manifest)
    for name in REQUIRED:
        if name not in artifacts or not art.path(name).is_file():
            raise AuditArtifactsError(root / artifacts.get(name, {}).get("path", name), f"artifact '{name}' is missing")
    if not art.srs.is_file():
        raise AuditArtifactsError(art.srs, "the SRS the circuit was set up with is missing",
                                  hint="the verifier cannot be re-rendered nor proofs verified without it")
    art.findings.extend(hash_chain(art))
    return art


def hash_chain(art: ArtifactSet) -> list[Finding]:
    """Every manifest entry present on disk must have its recorded sha256 (and the SRS its own)."""
    from sentinel.artifacts import sha256_file

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
        found.append(discrepancy("artifact-hashes", f"{art.name}: SRS {art.srs.name} differs from the manifest's sha256"))
    return found


def render_verifier(art: ArtifactSet) -> list[Finding]:
    """Re-render the verifier from the set's vk and compile it; sets ``art.runtime``; findings if it disagrees."""
    from sentinel.chain.solc import compile_files
    from sentinel.zk import ezkl_api
    from sentinel.zk.build import check_verifier_source

    runs = DEFAULT_VERIFIER_RUNS
    published: dict[str, Any] | None = None
    artifact_path = art.root / art.manifest["artifacts"].get("verifier_artifact", {}).get("path", "circuits/Halo2Verifier.json")
    if artifact_path.is_file():
        try:
            published = json.loads(artifact_path.read_text(encoding="utf-8"))
            runs = int(published.get("optimizer_runs", runs))
        except (OSError, ValueError) as exc:
            raise AuditArtifactsError(artifact_path, f"unreadable verifier artifact: {exc}") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="sentinel-audit-verifier-") as tmp:
            sol = Path(tmp) / "Halo2Verifier.sol"
            complaint = ezkl_api.render_evm_verifier(art.vk, art.settings, sol, Path(tmp) / "Halo2Verifier.abi", art.srs)
            check_verifier_source(sol, complaint)
            compiled = compile_files([sol], optimizer_runs=runs)
    except SentinelError as exc:
        raise AuditArtifactsError(art.vk, f"cannot re-render the verifier from this vk: {exc}") from exc
    art.runtime = compiled["Halo2Verifier"].runtime
    found = []
    if art.runtime_sha256 != art.manifest.get("verifier_runtime_sha256"):
        found.append(discrepancy("verifier-render", f"{art.name}: the vk renders a verifier whose runtime sha256 "
                                                    f"{art.runtime_sha256[:12]} is not the manifest's "
                                                    f"{str(art.manifest.get('verifier_runtime_sha256'))[:12]}"))
    if published is not None and published.get("deployedBytecode", "").removeprefix("0x") != art.runtime.hex():
        found.append(discrepancy("verifier-render", f"{art.name}: published Halo2Verifier.json runtime code is not "
                                                    "what the vk renders"))
    return found


@dataclass(frozen=True)
class BreakerReference:
    """The published SentinelBreaker source compiled by the auditor."""

    abi: list[dict[str, Any]]
    runtime: bytes
    immutables: tuple[tuple[int, int], ...]  #: (start, length) of every immutable in the runtime code
    compiler: str


def compile_breaker(source: Path, optimizer_runs: int) -> BreakerReference:
    """Compile ``SentinelBreaker.sol`` as ``sentinel deploy`` does, keeping the immutables' positions."""
    from sentinel.chain.solc import compile_standard_json

    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditArtifactsError(Path(source), f"cannot read the breaker source: {exc.strerror or exc}") from exc
    request = {
        "language": "Solidity",
        "sources": {Path(source).name: {"content": text}},
        "settings": {
            "optimizer": {"enabled": True, "runs": optimizer_runs}, "viaIR": False, "evmVersion": "shanghai",
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {"*": {"SentinelBreaker": ["abi", "evm.deployedBytecode.object",
                                                          "evm.deployedBytecode.immutableReferences"]}},
        },
    }
    try:
        version, output = compile_standard_json(request)
        c = output["contracts"][Path(source).name]["SentinelBreaker"]
    except (SentinelError, KeyError) as exc:
        raise AuditArtifactsError(Path(source), f"cannot compile SentinelBreaker: {exc}") from exc
    refs = c["evm"]["deployedBytecode"].get("immutableReferences", {})
    spans = tuple(sorted((int(r["start"]), int(r["length"])) for rs in refs.values() for r in rs))
    return BreakerReference(c["abi"], bytes.fromhex(c["evm"]["deployedBytecode"]["object"]), spans, version)


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
