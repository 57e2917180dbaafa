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


def load_batch_manifest(layout: ArtifactLayout) -> dict[str, Any]:
    """The batch set's manifest (``layout`` either set's layout), refused unless the current single set records it.

    A batch set left on disk after ``circuit.batch_windows`` was set to 0, or
    built from an older single circuit, is stale: proving or verifying with it
    would use another model than the single circuit's.
    """
    single_layout, batch_layout = layout.single(), layout.batch()
    single = load_manifest(single_layout)
    rebuild = "set circuit.batch_windows (2..16) and run `sentinel circuit build`"
    if not single.get("batch"):
        raise CircuitError(f"{single_layout.circuit_manifest}: no batch circuit built; {rebuild}")
    batch = read_json_artifact(batch_layout.circuit_manifest, "batch circuit", "sentinel circuit build",
                               CircuitError)
    if batch.get("source", {}).get("single_input_key") != single["input_key"] or \
            batch.get("windows_per_proof") != single["batch"]["windows"]:
        raise CircuitError(f"{batch_layout.circuit_manifest}: built from another single circuit or K than "
                           f"{single_layout.circuit_manifest}'s; {rebuild}")
    return batch
