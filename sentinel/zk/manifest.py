"""Reading the circuit manifest (``circuits/manifest.json``) that ``sentinel circuit build`` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, read_json_artifact
from sentinel.errors import CircuitError


def load_manifest(layout: ArtifactLayout) -> dict[str, Any]:
    """The circuit manifest, or a CircuitError that says to build first."""
    return read_json_artifact(layout.circuit_manifest, "circuit", "sentinel circuit build", CircuitError)


def srs_file(root: Path, manifest: dict[str, Any]) -> Path:
    """Where the SRS the circuit was set up with lives (a manifest path is relative to the project root)."""
    path = Path(manifest["srs"]["path"])
    return path if path.is_absolute() else root / path


def srs_path(layout: ArtifactLayout, manifest: dict[str, Any]) -> Path:
    """The SRS the circuit was set up with; a CircuitError if it is missing."""
    path = srs_file(layout.root, manifest)
    if not path.exists():
        raise CircuitError(f"{path}: the circuit's SRS is missing", hint="rebuild with `sentinel circuit build`")
    return path
