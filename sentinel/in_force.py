"""Which artifact set a breaker runs now: the relay and the attester services follow a verifier upgrade with this.

Production is not a setting: a market's model in force is the version whose
single-window verifier code the breaker calls (``verifier()``, its runtime code,
sha256, :func:`sentinel.versions.for_verifier_code`). The sets looked at are
every set Sentinel knows (:func:`sentinel.versions.known_versions`) and the
market's own configured set. Everything here is pure or reads files; the chain
reads stay with the callers (the relay's web3 chain, the attester's own node).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig
from sentinel.errors import ModelError
from sentinel.versions import Version, for_verifier_code, json_object, known_versions, read_version


class UnknownModel(ModelError):
    """The breaker calls a verifier whose code is no known artifact set's: nothing can be proved or hashed for it."""

    def __init__(self, verifier: str, code_sha256: str) -> None:
        self.verifier = verifier
        self.code_sha256 = code_sha256
        super().__init__(f"the breaker calls verifier {verifier} (runtime code sha256 {code_sha256[:16]}...), the "
                         "verifier of no known model version: stopped proving and hashing for it",
                         hint="add that model's artifact set with `sentinel models add DIR`")


def candidate_sets(config: SentinelConfig, layout: ArtifactLayout, own: ArtifactLayout) -> list[Version]:
    """Every set Sentinel knows for a market: the project's known versions, then the market's configured set
    ``own`` if it is not one of them (read fresh: a set added since is found)."""
    versions = known_versions(config, layout)
    if not own.onnx_model.is_file():
        return versions
    mine = read_version(own, "market")
    seen = next((v for v in versions if v.id == mine.id), None)
    if seen is None:
        return [*versions, mine]
    if mine.built and not seen.built:
        return [mine if v.id == mine.id else v for v in versions]
    return versions


def in_force(versions: list[Version], verifier: str, runtime: bytes) -> Version:
    """The version whose single-window verifier is ``runtime`` (the code at ``verifier``); UnknownModel if none."""
    found = for_verifier_code(versions, runtime)
    if found is None:
        raise UnknownModel(verifier, hashlib.sha256(runtime).hexdigest())
    return found


@dataclass(frozen=True)
class ModelSettings:
    """What a set's circuit manifest fixes for relaying and attesting: window size, cadence, its verifying keys."""

    window: int
    cadence: float
    batch_windows: int  #: windows per batch proof (0: no batch circuit)
    max_abs_error: float  #: the circuit's measured fidelity (the relay's risk margin derives from it)
    vk_sha256: frozenset[str]  #: the single (and batch) circuit's vk sha256: a bundle proved with this set has one


def settings_of(layout: ArtifactLayout) -> ModelSettings:
    """The :class:`ModelSettings` of the set at ``layout`` (read from its manifests)."""
    from sentinel.zk.manifest import load_manifest

    manifest = load_manifest(layout)
    batch = manifest.get("batch") or {}
    vks = {_vk(manifest), _vk(json_object(layout.batch().circuit_manifest) if batch else None)} - {None}
    return ModelSettings(int(manifest["window"]), float(manifest["cadence_seconds"]), int(batch.get("windows", 0)),
                         float(manifest.get("fidelity", {}).get("max_abs_error", 0.0)),
                         frozenset(str(v) for v in vks))


def _vk(manifest: dict[str, Any] | None) -> str | None:
    """A circuit manifest's vk sha256 (None when it records none)."""
    vk = ((manifest or {}).get("artifacts") or {}).get("vk") or {}
    sha = vk.get("sha256") if isinstance(vk, dict) else None
    return sha if isinstance(sha, str) else None


def bundle_vk(path: Path | str | None) -> str | None:
    """The ``model.vk_sha256`` of a proof bundle (single or batch), None if it cannot be read."""
    if path is None:
        return None
    doc = json_object(Path(path))
    model = (doc or {}).get("model")
    vk = model.get("vk_sha256") if isinstance(model, dict) else None
    return vk if isinstance(vk, str) else None
