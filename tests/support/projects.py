"""Throwaway project roots for tests."""

from __future__ import annotations

from pathlib import Path


def linked_project(tiny_circuit: Path, root: Path) -> Path:
    """``root`` as a project on the tiny circuit: its circuits/ and models/ linked (never written), its own
    sentinel.toml copy, proofs/ and .sentinel/."""
    for part in ("circuits", "models"):
        (root / part).symlink_to(tiny_circuit / part)
    (root / "sentinel.toml").write_text((tiny_circuit / "sentinel.toml").read_text())
    return root
