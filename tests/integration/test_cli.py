"""The CLI as a newcomer types it: defaults that work, a fresh clone's first proof, a quiet stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_score_with_no_flags_is_quiet_unless_verbose():
    """`sentinel score` on the committed model and sample feed: a result line, and nothing from TensorFlow."""
    rows = len((REPO / "data" / "sample_market_depth.csv").read_text().splitlines()) - 1
    cmd = [sys.executable, "-m", "sentinel", "--root", str(REPO)]
    done = subprocess.run([*cmd, "score"], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"window ending row {rows} ")
    assert done.stderr == "", f"start-up noise on stderr:\n{done.stderr}"
    loud = subprocess.run([*cmd, "-v", "score"], capture_output=True, text=True, cwd=REPO, check=False)
    assert loud.returncode == 0 and loud.stdout == done.stdout  # same result: only the logging differs
    assert "oneDNN custom operations are on" in loud.stderr  # what the quiet run filtered, shown with -v


def test_prove_on_a_fresh_clone_builds_the_circuit_first(tiny_project, tiny_feed, run_cli, tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(tiny_project, clone, ignore=shutil.ignore_patterns("circuits", "proofs"))
    code, out, err = run_cli("--root", clone, "prove", "--data", tiny_feed, "--json")
    assert code == 0, err
    assert "[circuit] no circuit built" in err and "WARNING: TEST-ONLY SRS" in err
    (result,) = json.loads(out)["bundles"]
    assert (clone / "circuits" / "manifest.json").exists()
    code, out, err = run_cli("--root", clone, "verify")
    assert code == 0, err
    assert f"[verify] newest bundle for the current circuit: {result['bundle']}" in err
    assert out.startswith(f"valid: {result['bundle']}: window {result['window_id']}")
