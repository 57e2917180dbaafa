"""The risk model on real TensorFlow, tf2onnx and onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.errors import ModelError

pytestmark = pytest.mark.integration

DETECTORS = {"lstm", "seed_rule", "blr_threshold", "logistic", "order_imbalance"}
KEYS = {"event_recall", "median_lead_rows", "false_trips_per_10k", "pr_auc", "roc_auc"}


def test_training_writes_every_artifact(tiny_project):
    layout = ArtifactLayout(tiny_project)
    for path in (layout.keras_model, layout.onnx_model, layout.model_card, layout.history_plot, layout.risk_plot):
        assert path.exists() and path.stat().st_size > 0, path
    card = json.loads(layout.model_card.read_text())
    assert card["config"]["units"] == 4
    # The default hard model starts from a smooth one trained first: both stages ran.
    assert card["config"]["activations"] == "hard"
    assert "fine-tuned from the smooth model" in card["model"]["architecture"]
    assert card["training"]["warm_start"]["epochs_run"] >= 1 and card["training"]["epochs_run"] >= 1
    assert card["model"]["activation_bound"] is None  # no lookup table to size
    assert card["export"]["parity_max_abs_diff"] <= 1e-5
    assert card["export"]["parity_windows"] == card["evaluation"]["detectors"]["lstm"]["test"]["windows"]
    assert not {"Loop", "Scan"} & set(card["export"]["op_types"])
    assert set(card["evaluation"]["detectors"]) == DETECTORS
    for result in card["evaluation"]["detectors"].values():
        assert set(result["test"]) >= KEYS and set(result["holdout_family"]) >= KEYS
    assert card["data"]["sha256"] and card["versions"]["tensorflow"] == "2.21.0"
    policy = card["trip_policy"]
    assert 0 <= policy["reset_threshold"] <= policy["trip_threshold"] <= 1


def test_evaluate_recomputes_the_cards_figures(tiny_project, run_cli):
    code, out, err = run_cli("--root", tiny_project, "evaluate", "--json")
    assert code == 0, err
    fresh = json.loads(out)
    card = json.loads(ArtifactLayout(tiny_project).model_card.read_text())
    assert fresh["detectors"].keys() == card["evaluation"]["detectors"].keys()
    for name, result in fresh["detectors"].items():
        for part in ("test", "holdout_family"):
            for key in KEYS:
                a, b = result[part][key], card["evaluation"]["detectors"][name][part][key]
                assert (a is None and b is None) or a == pytest.approx(b, abs=1e-6), (name, part, key)


def test_evaluate_refuses_data_that_changed(tiny_project, run_cli, tmp_path):
    layout = ArtifactLayout(tiny_project)
    card = json.loads(layout.model_card.read_text())
    data = layout.training_data(card["config"]["data_seed"], card["config"]["data_episodes"])
    original = data.read_bytes()
    try:
        lines = original.decode().splitlines(keepends=True)
        data.write_text("".join(lines[:-1]))  # drop the last row: still valid, different hash
        code, _, err = run_cli("--root", tiny_project, "evaluate")
        assert code == 1 and "differs from the model card" in err
    finally:
        data.write_bytes(original)


def test_onnx_matches_keras_on_fresh_windows(tiny_project):
    from sentinel.data.synthetic import generate
    from sentinel.data.windows import cut_windows
    from sentinel.model.export import onnx_scores
    from sentinel.model.pipeline import load_trained_model
    from sentinel.model.train import KerasDetector

    layout = ArtifactLayout(tiny_project)
    windows = cut_windows(generate(4, seed=99), 50)
    x = windows.x[::7]
    keras_scores = KerasDetector(load_trained_model(layout)).score(x)
    assert np.max(np.abs(keras_scores - onnx_scores(layout.onnx_model, x))) <= 1e-5
    assert np.all((keras_scores >= 0) & (keras_scores <= 1))


def test_score_cli(tiny_project, run_cli, tmp_path):
    from sentinel.data.io import write_market_csv
    from sentinel.data.synthetic import generate

    feed = tmp_path / "feed.csv"
    write_market_csv(generate(2, seed=5), feed)
    code, out, err = run_cli("--root", tiny_project, "score", "--data", feed, "--window", "latest", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["windows"]
    assert 0 <= result["score"] <= 1
    assert result["end_row"] == len(feed.read_text().splitlines()) - 1
    code, _, err = run_cli("--root", tiny_project, "score", "--data", feed, "--window", "3")
    assert code == 1 and "a window needs 50" in err


def test_export_refuses_a_graph_with_a_loop(tmp_path):
    from sentinel.model.backend import import_keras

    keras = import_keras()

    inputs = keras.Input((50, 4))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.LSTM(2, unroll=False)(inputs))
    model = keras.Model(inputs, outputs)
    from sentinel.model.export import export_onnx

    target = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match="unroll=True"):
        export_onnx(model, 50, target, np.ones((2, 50, 4), np.float32))
    assert not target.exists()


def test_export_is_byte_deterministic(tiny_project):
    """tf2onnx names weights differently run to run; the canonical export does not."""
    from sentinel.model.export import onnx_bytes
    from sentinel.model.pipeline import load_trained_model

    model = load_trained_model(ArtifactLayout(tiny_project))
    assert onnx_bytes(model, 50) == onnx_bytes(model, 50)


@pytest.mark.parametrize("output_bound", [0.0, 2.5])
def test_weight_constraints_enforce_the_activation_bound(output_bound):
    """Whatever the optimiser proposes, the constraints keep every gate under the bound, the output under its own."""
    from sentinel.model.network import build_model, model_activation_bound

    bound, clip = 6.0, 4.0
    model = build_model(((40, 40), (10, 5)), 4, np.zeros(3), np.ones(3), 100.0, seed=1, clip=clip,
                        preactivation_bound=bound, output_bound=output_bound)
    rng = np.random.default_rng(0)
    for layer in (model.get_layer("lstm"), model.get_layer("risk")):
        cell = getattr(layer, "cell", layer)
        constraints = (cell.kernel_constraint, getattr(cell, "recurrent_constraint", None), cell.bias_constraint)
        proposed = [rng.normal(0.0, 5.0, w.shape).astype(np.float32) for w in layer.get_weights()]
        kept = [np.asarray(c(w)) if c is not None else w
                for c, w in zip([c for c in constraints if c is not None], proposed, strict=False)]
        layer.set_weights(kept)
    reached = model_activation_bound(model, clip)
    assert reached["gate"] <= bound * (1 + 1e-5)
    assert reached["candidate"] <= bound / 2 * (1 + 1e-5)  # tanh(g) fits the table the halved sigmoids need
    assert reached["max"] <= bound / 2 * (1 + 1e-5)
    assert reached["output"] <= (output_bound or bound) * (1 + 1e-5)
    # The random proposals were far outside: the constraints did the work, the bounds are nearly met.
    assert reached["gate"] > 0.9 * bound
    assert reached["candidate"] > 0.9 * bound / 2
    assert reached["output"] > 0.9 * (output_bound or bound)


def _random_sentinel_model(pooling=((40, 40), (8, 4), (2, 2)), units=5, clip=4.0, seed=3,
                           activations="smooth"):
    """A Sentinel model with random (not trained) weights and realistic feature constants."""
    from sentinel.model.network import build_model

    model = build_model(pooling, units, np.array([1.1, 2600.0, 2400.0]), np.array([0.26, 756.5, 574.0]), 2954.0,
                        seed=seed, clip=clip, preactivation_bound=15.0 if activations == "smooth" else 0.0,
                        activations=activations)
    rng = np.random.default_rng(seed)
    for name, sd in (("lstm", 0.6), ("risk", 0.6 if activations == "smooth" else 3.0)):
        layer = model.get_layer(name)  # a hard score spans |logit| <= 8: a larger output layer exercises it
        layer.set_weights([rng.normal(0.0, sd, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def _market_windows(n: int, seed: int) -> np.ndarray:
    """Windows in the data's units: BLR near 1, volumes in thousands, prices near 3,000, with crashes."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 50, 4), np.float32)
    x[..., 0] = rng.uniform(0.2, 2.5, (n, 50))
    x[..., 1] = rng.uniform(100.0, 9000.0, (n, 50))
    x[..., 2] = rng.uniform(100.0, 9000.0, (n, 50))
    x[..., 3] = 2954.0 * np.cumprod(1.0 + rng.normal(0.0, 0.01, (n, 50)), axis=1)
    return x


@pytest.mark.parametrize(("pooling", "activations"), [
    (((40, 40), (8, 4), (2, 2)), "smooth"), (((30, 10), (20, 5)), "smooth"), (((40, 40), (8, 4), (2, 2)), "hard"),
])
def test_circuit_form_computes_the_keras_model(pooling, activations):
    """The rewritten graph (integer pooling, fused gates, paired cell update) is the same function."""
    from sentinel.model.export import onnx_bytes, onnx_scores, op_types

    model = _random_sentinel_model(pooling, activations=activations)
    payload = onnx_bytes(model, 50)
    # EZKL's optimiser splits a product over a Concat into one per part: the form must not use one.
    assert "Concat" not in op_types(payload) and "Einsum" in op_types(payload)
    assert "Sigmoid" not in op_types(payload)  # sigmoid(x) = (1 + tanh(x / 2)) / 2: one lookup table
    assert ("Tanh" in op_types(payload)) == (activations == "smooth")  # hard_tanh is ReLUs: no table at all
    x = _market_windows(64, seed=11)
    keras_scores = np.asarray(model.predict(x, verbose=0))[:, 0]
    ort_scores = onnx_scores(payload, x)
    assert np.ptp(keras_scores) > 0.05  # the windows exercise the model, not one saturated score
    assert np.max(np.abs(keras_scores - ort_scores)) < 1e-5


def test_hard_model_saves_loads_and_needs_no_lookup_table(tmp_path):
    """A hard model round-trips through .keras (its score layer) and EZKL lays it out with range checks only."""
    from sentinel.model.export import onnx_bytes
    from sentinel.model.network import load_model
    from sentinel.zk import ezkl_api

    model = _random_sentinel_model(activations="hard")
    model.save(tmp_path / "hard.keras")
    loaded = load_model(tmp_path / "hard.keras")
    x = _market_windows(16, seed=5)
    assert np.array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    (tmp_path / "hard.onnx").write_bytes(onnx_bytes(loaded, 50))
    settings = tmp_path / "settings.json"
    ezkl_api.gen_settings(tmp_path / "hard.onnx", settings,
                          ezkl_api.run_args("hashed", "fixed", "public", "SAFE", 1, 16000, 2))
    doc = json.loads(settings.read_text())
    assert doc["required_lookups"] == []
    assert sorted(map(tuple, doc["required_range_checks"])) == [(-1, 1), (0, 15999)]


def _smooth_logit(model, x):
    """The smooth model's sigmoid input: its score through the inverse sigmoid."""
    p = np.asarray(model.predict(x, verbose=0), np.float64)[:, 0]
    return np.log(p / (1.0 - p))


@pytest.mark.parametrize("gain_ok", [True, False])
def test_a_hard_model_starts_as_the_smooth_models_tangent(gain_ok, monkeypatch):
    """hard_from_smooth swaps every activation for its tangent at 0: with small pre-activations the logits agree."""
    from sentinel.model import network

    if not gain_ok:  # without the gate gain, hard_sigmoid(x) = x/6 + 1/2 is not the sigmoid's tangent
        monkeypatch.setattr(network, "HARD_GATE_GAIN", 1.0)
    smooth = _random_sentinel_model(units=5)
    lstm = smooth.get_layer("lstm")  # small weights: every gate's pre-activation stays near 0
    lstm.set_weights([w * 0.01 for w in lstm.get_weights()])
    hard = _random_sentinel_model(units=5, activations="hard", seed=9)
    network.hard_from_smooth(smooth, hard)
    x = _market_windows(32, seed=2)
    smooth_logit = _smooth_logit(smooth, x)
    hard_logits = network.logit_model(hard)
    assert hard_logits is not None
    hard_logit = np.asarray(hard_logits.predict(x, verbose=0), np.float64)[:, 0]
    assert np.ptp(smooth_logit) > 0.01  # the windows move the logit
    error = np.max(np.abs(smooth_logit - hard_logit))
    # Tangents agree to third order: with the gain the logits differ by ~0.06 % of their spread, without it ~0.5 %.
    assert (error < 2e-3 * np.ptp(smooth_logit)) == gain_ok


def test_circuit_form_refuses_activations_it_cannot_rewrite():
    from sentinel.model.circuit_form import circuit_form

    model = _random_sentinel_model()
    model.get_layer("lstm").cell.activation = _keras_activation("relu")
    with pytest.raises(ModelError, match=r"activations .*'relu'"):
        circuit_form(model)


def _keras_activation(name: str):
    from sentinel.model.backend import import_keras

    return import_keras().activations.get(name)


def test_circuit_form_refuses_a_model_off_the_scale_grid():
    from sentinel.model.circuit_form import circuit_form

    model = _random_sentinel_model()
    model.get_layer("features").scale_grid = 0.0  # as saved before the circuit form
    with pytest.raises(ModelError, match="retrain"):
        circuit_form(model)


def test_circuit_form_refuses_a_model_without_a_baseline_step():
    from sentinel.model.circuit_form import circuit_form

    model = _random_sentinel_model()
    model.get_layer("features").baseline = False  # as saved when the LSTM ran over the baseline step too
    with pytest.raises(ModelError, match=r"baseline.*retrain"):
        circuit_form(model)
