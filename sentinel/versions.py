"""Model versions: artifact sets side by side, each addressed by its content, and the one a breaker runs.

A version is an artifact set laid out like a project root (``models/`` with the
trained model, its ONNX and card, ``circuits/`` with the circuit built from it,
keys never committed). Its id is ``v-`` and the first 12 hex digits of the
ONNX model's sha256: the same model is the same version wherever it lies.

The sets Sentinel knows are the project's own, every market's
(``[markets.<name>] artifacts``) and every directory under ``versions/``
(``sentinel models add``, ``sentinel retrain``). Which one is production for a
market is not a setting: it is the one whose verifier code the market's
breaker calls. The relay and the attester services find it the same way
(:func:`for_verifier_code`), so a timelocked verifier change on chain moves
them all to the new set at the block that executes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, sha256_file
from sentinel.config import SentinelConfig
from sentinel.errors import ConfigError, ModelError

#: Where added and retrained versions live, under the project root.
VERSIONS_DIR = "versions"
#: Hex digits of the ONNX sha256 in a version id.
ID_DIGITS = 12


def version_id(onnx_sha256: str) -> str:
    """The id of the model whose ONNX file has this sha256."""
    return f"v-{onnx_sha256[:ID_DIGITS]}"


@dataclass(frozen=True)
class Version:
    """One artifact set: its id, where it lies and what it holds (read from its files, never trusted by name)."""

    id: str
    layout: ArtifactLayout
    origins: tuple[str, ...]  #: where Sentinel found it: "project", "market <name>", "versions"
    onnx_sha256: str
    #: sha256 of the single-window verifier's runtime code (the code the breaker calls); None: no circuit built
    verifier_runtime_sha256: str | None
    #: the same for the batch verifier, when the set has a batch circuit
    batch_runtime_sha256: str | None
    trained_at: str | None
    evaluation: dict[str, Any] | None = field(default=None, compare=False)  #: ``models/evaluation.json``

    @property
    def built(self) -> bool:
        """True when the set's circuit (and so its verifier) is built."""
        return self.verifier_runtime_sha256 is not None


def read_version(layout: ArtifactLayout, origin: str) -> Version:
    """The version in ``layout``'s root; a ModelError naming the file when it holds no trained model."""
    onnx = layout.onnx_model
    if not onnx.is_file():
        raise ModelError(f"{layout.root}: no trained model ({onnx.relative_to(layout.root)} is missing)",
                              hint="an artifact set is laid out like a project root: run `sentinel train` in it")
    digest = sha256_file(onnx)
    runtime = batch = None
    manifest = json_object(layout.circuit_manifest)
    if manifest is not None and _model_sha(manifest) in (None, digest):
        runtime = manifest.get("verifier_runtime_sha256")
        if manifest.get("batch"):
            batch_manifest = json_object(layout.batch().circuit_manifest) or {}
            batch = batch_manifest.get("verifier_runtime_sha256")
    card = json_object(layout.model_card) or {}
    return Version(version_id(digest), layout, (origin,), digest, runtime, batch, card.get("trained_at"),
                   json_object(layout.evaluation))


def _model_sha(manifest: dict[str, Any]) -> str | None:
    """The ONNX sha256 a circuit manifest was built from (None when it does not say)."""
    entry = (manifest.get("artifacts") or {}).get("onnx") or {}
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    return sha if isinstance(sha, str) else None


def json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def known_versions(config: SentinelConfig, layout: ArtifactLayout) -> list[Version]:
    """Every artifact set Sentinel knows, each version once (its first place: the project's own, then each
    market's, then ``versions/`` in id order); ``origins`` lists every place it was found."""
    from sentinel.markets import markets

    places: list[tuple[ArtifactLayout, str]] = []
    if layout.onnx_model.is_file():
        places.append((layout, "project"))
    places += [(m.layout, f"market {m.name}") for m in markets(config, layout) if m.layout.root != layout.root]
    root = layout.root / VERSIONS_DIR
    if root.is_dir():
        places += [(ArtifactLayout(d), "versions") for d in sorted(root.iterdir()) if d.is_dir()
                   and not d.name.startswith(".")]
    found: dict[str, Version] = {}
    for place, origin in places:
        version = read_version(place, origin)
        seen = found.get(version.id)
        if seen is None:
            found[version.id] = version
        elif origin not in seen.origins:
            # the same model elsewhere; prefer a place whose circuit is built
            first = version if (version.built and not seen.built) else seen
            found[version.id] = _with_origins(first, (*seen.origins, origin))
    return list(found.values())


def _with_origins(version: Version, origins: tuple[str, ...]) -> Version:
    from dataclasses import replace

    return replace(version, origins=origins)


def find_version(versions: list[Version], wanted: str) -> Version:
    """The version with id ``wanted`` (or an unambiguous prefix of it); a ConfigError listing the ids otherwise."""
    matches = [v for v in versions if v.id == wanted] or [v for v in versions if v.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(v.id for v in versions) or "none"
    why = "matches several" if matches else "is not one"
    raise ConfigError(f"version '{wanted}' {why} of the known artifact sets ({known})",
                      hint="`sentinel models list` shows them")


def for_verifier_code(versions: list[Version], runtime: bytes) -> Version | None:
    """The built version whose single-window verifier has exactly this runtime code, or None."""
    digest = hashlib.sha256(runtime).hexdigest()
    return next((v for v in versions if v.verifier_runtime_sha256 == digest), None)


def add_version(layout: ArtifactLayout, source: Path, *, circuits: bool = True) -> Version:
    """Copy the artifact set at ``source`` (a project-like root) into ``versions/<id>/``; its ``circuits/`` too
    when ``circuits`` and built. Nothing is half-written: the copy is made beside the target and renamed into
    place. Adding a version that is already there returns it (a circuit is added to it if it had none)."""
    src = ArtifactLayout(Path(source).resolve())
    version = read_version(src, "source")
    target = layout.root / VERSIONS_DIR / version.id
    if target.exists():
        existing = read_version(ArtifactLayout(target), "versions")
        if existing.onnx_sha256 != version.onnx_sha256:
            raise ConfigError(f"{target}: holds model {existing.onnx_sha256[:16]}, not {version.onnx_sha256[:16]}",
                              hint="remove the directory: it is not the version its name says")
        if existing.built or not (circuits and version.built):
            return existing
        _copy_into(src, target, parts=("circuits",))
        return read_version(ArtifactLayout(target), "versions")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version.id}.", dir=target.parent))
    try:
        parts = ("models", "circuits") if circuits and version.built else ("models",)
        _copy_into(src, staging, parts=parts)
        if (src.root / "sentinel.toml").is_file():
            shutil.copy2(src.root / "sentinel.toml", staging / "sentinel.toml")
        if (data := _training_data(src)) is not None:  # its baselines are fitted on it: `models evaluate` needs it
            (staging / "data").mkdir()
            _link_or_copy(str(data), str(staging / "data" / data.name))
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return read_version(ArtifactLayout(target), "versions")


def _training_data(src: ArtifactLayout) -> Path | None:
    """The scenarios file the set's model card names under ``data/``, when it is there (``sentinel onboard`` and
    ``sentinel retrain`` keep calibrated ones; default scenarios are regenerated on demand)."""
    name = (json_object(src.model_card) or {}).get("data", {}).get("path")
    path = src.data_dir / name if isinstance(name, str) and name else None
    return path if path is not None and path.is_file() and path.parent == src.data_dir else None


def _copy_into(src: ArtifactLayout, target: Path, parts: tuple[str, ...]) -> None:
    """Copy ``parts`` of ``src`` into ``target`` (a new directory each; the circuit's large keys are hard-linked
    when the file system allows, else copied)."""
    for part in parts:
        origin = src.root / part
        if not origin.is_dir():
            continue
        if (target / part).exists():
            raise ConfigError(f"{target / part}: already exists")
        staging = target / f".{part}.partial"
        shutil.copytree(origin, staging, symlinks=False, copy_function=_link_or_copy)
        staging.rename(target / part)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)
