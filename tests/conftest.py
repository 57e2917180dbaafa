"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.cli.main import main


@pytest.fixture
def run_cli(capsys):
    """Run ``sentinel ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
