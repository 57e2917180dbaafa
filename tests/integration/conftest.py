"""Session fixtures on real TensorFlow (and later EZKL, solc, Anvil)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config

#: A tiny but complete model setup: same code paths as the default, fewer rows and units.
TINY_TOML = """
[model]
data_episodes = 40
data_seed = 3
units = 4
epochs = 3
patience = 2
batch_size = 512
"""


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:  # noqa: ANN001
    """A project root with a trained tiny model, built once per test run through the library."""
    from sentinel.model.pipeline import run_training

    root = tmp_path_factory.mktemp("tiny-project")
    (root / "sentinel.toml").write_text(TINY_TOML)
    layout = ArtifactLayout(root)
    run_training(layout, load_config(root, env={}))
    return root
