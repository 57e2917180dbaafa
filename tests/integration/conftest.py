"""Session fixtures on real TensorFlow (and later EZKL, solc, Anvil)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain.encoding import ProofBundle
from sentinel.config import load_config
from sentinel.zk.prove import BatchProveResult

#: A tiny but complete model setup: same code paths as the default (a hard model fine-tuned from a
#: smooth one trained under a weight bound, one inner column, the baseline step as context), fewer
#: units, one LSTM step and a tighter bound, so the model trains in seconds and its circuit is no
#: larger than the default's (2^14; the Poseidon hash of the 200 inputs sets its rows). Its scores
#: still span the breaker's bounds.
TINY_TOML = """
[model]
# the classic space (one market) with bleed held out: 40 episodes hold every family; the card has a held-out part
scenarios = "classic"
holdout_family = "bleed"
negative_weight = 0.0
data_episodes = 40
data_seed = 3
units = 4
pooling = "40:40,10:10"
preactivation_bound = 4.0
epochs = 3
# 3 epochs at the default 3e-4 leave the hard scores within 0.49-0.52: too narrow for the breaker's bounds
finetune_learning_rate = 0.01
patience = 2
batch_size = 512

[circuit]
calibration_windows = 6
fidelity_windows = 6
scales = "10"
fidelity_tolerance = 0.02
# the batch set (K windows per proof) at its smallest: 2 copies of the model
batch_windows = 2
"""


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root with a trained tiny model, built once per test run through the library."""
    from sentinel.model.pipeline import run_training

    root = tmp_path_factory.mktemp("tiny-project")
    (root / "sentinel.toml").write_text(TINY_TOML)
    layout = ArtifactLayout(root)
    run_training(layout, load_config(root, env={}))
    return root


@pytest.fixture(scope="session")
def tiny_circuit(tiny_project: Path) -> Path:
    """The tiny project with its circuit built once per test run (same library call as the CLI)."""
    from sentinel.zk.build import build_circuit

    build_circuit(ArtifactLayout(tiny_project), load_config(tiny_project, env={}))
    return tiny_project


@pytest.fixture(scope="session")
def tiny_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short validated feed to prove windows from."""
    from sentinel.data.io import write_market_csv
    from sentinel.data.synthetic import generate

    path = tmp_path_factory.mktemp("feed") / "market_depth.csv"
    write_market_csv(generate(2, seed=5), path)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tiny_circuit: Path, tiny_feed: Path) -> Path:
    """One proof bundle of the feed's latest window."""
    from sentinel.data.io import read_market_csv
    from sentinel.zk.prove import Prover

    config = load_config(tiny_circuit, env={})
    prover = Prover(ArtifactLayout(tiny_circuit), config)
    return prover.prove(read_market_csv(tiny_feed), "latest").bundle


@pytest.fixture(scope="session")
def tiny_latest_batch(tiny_circuit: Path, tiny_feed: Path) -> BatchProveResult:
    """The feed's latest K windows (the last one: ``tiny_bundle``'s) proven in one batch proof."""
    from sentinel.data.io import read_market_csv
    from sentinel.zk.prove import Prover

    config = load_config(tiny_circuit, env={})
    market = read_market_csv(tiny_feed)
    k = config.circuit.batch_windows
    return Prover(ArtifactLayout(tiny_circuit).batch(), config).prove_windows(
        market, list(range(len(market) - k, len(market))))


@pytest.fixture(scope="session")
def scored_bundles(tiny_circuit: Path, tiny_feed: Path) -> dict[str, ProofBundle]:
    """Real proofs of the feed's highest- and lowest-scoring windows (float model picks them)."""
    from sentinel.chain.encoding import read_bundle
    from sentinel.data.io import read_market_csv
    from sentinel.data.windows import cut_windows
    from sentinel.model.export import onnx_scores
    from sentinel.zk.prove import Prover

    layout = ArtifactLayout(tiny_circuit)
    prover = Prover(layout, load_config(tiny_circuit, env={}))
    market = read_market_csv(tiny_feed)
    windows = cut_windows(market, prover.window)
    scores = onnx_scores(layout.onnx_model, windows.x)
    high = prover.prove_end_row(market, int(windows.end_rows[scores.argmax()]))
    low = prover.prove_end_row(market, int(windows.end_rows[scores.argmin()]))
    return {"high": read_bundle(high.bundle), "low": read_bundle(low.bundle)}


@pytest.fixture(scope="session")
def other_model_circuit(tiny_circuit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model's project with its circuit built: the tiny model with its output bias shifted."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    from sentinel.zk.build import build_circuit

    root = tmp_path_factory.mktemp("other-model")
    for part in ("models", "data"):
        if (tiny_circuit / part).exists():
            shutil.copytree(tiny_circuit / part, root / part)
    # no batch circuit: the tests upgrading to this model need none (and it saves a K-window build)
    (root / "sentinel.toml").write_text(TINY_TOML.replace("batch_windows = 2", "batch_windows = 0"))
    layout = ArtifactLayout(root)
    model = onnx.load(layout.onnx_model)
    bias = next(i for i in model.graph.initializer if i.name == "dense_bias")  # named by the circuit form
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.25, bias.name))
    onnx.save(model, layout.onnx_model)
    card = json.loads(layout.model_card.read_text())
    card["model"]["onnx_sha256"] = hashlib.sha256(layout.onnx_model.read_bytes()).hexdigest()
    layout.model_card.write_text(json.dumps(card))
    build_circuit(layout, load_config(root, env={}))
    return root



@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head node and a second node on loopback (127.0.0.2, .3), one CPU each, for the session; yields the head's
    address (see tests.support.raynodes)."""
    from tests.support.raynodes import two_node_cluster

    with two_node_cluster(tmp_path_factory.mktemp("ray-logs")) as address:
        yield address
