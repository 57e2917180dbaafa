"""The batch circuit set's pure parts: instance layout for K, batched ONNX, paths, settings, row checks."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.errors import CircuitError, ConfigError
from sentinel.zk.batch import batch_input_json, batch_input_key, batch_logrows, batched_onnx, consecutive_end_rows
from sentinel.zk.layout import BatchInstanceLayout, batch_instance_layout


def _settings(k: int, *, input_visibility: object = None, shapes: list[list[int]] | None = None,
              output_scales: list[int] | None = None) -> dict[str, object]:
    """The fields of an EZKL settings.json the layout reads, as EZKL writes them for K hashed windows."""
    return {
        "run_args": {"input_visibility": input_visibility or {"Hashed": {"hash_is_public": True, "outlets": []}},
                     "output_visibility": "Public"},
        "model_input_scales": [10] * k,
        "model_output_scales": output_scales if output_scales is not None else [10] * k,
        "model_instance_shapes": shapes if shapes is not None else [[1, 1]] * k,
    }


@pytest.mark.parametrize("k", [2, 4, 16])
def test_batch_layout_puts_every_hash_before_every_score(k):
    layout = batch_instance_layout(_settings(k), k)
    assert (layout.windows, layout.total, layout.score_scale, layout.input_scale) == (k, 2 * k, 10, 10)
    assert [layout.hash_index(i) for i in range(k)] == list(range(k))
    assert [layout.score_index(i) for i in range(k)] == list(range(k, 2 * k))
    instances = [f"h{i}" for i in range(k)] + [f"s{i}" for i in range(k)]
    assert layout.split(instances) == ([f"h{i}" for i in range(k)], [f"s{i}" for i in range(k)])
    entry = layout.to_dict()
    assert entry["input_hash_indices"] == list(range(k)) and entry["score_indices"] == list(range(k, 2 * k))
    assert f"instances[0][{k}+i]" in entry["description"]
    assert BatchInstanceLayout.from_manifest(entry) == layout


def test_batch_layout_refuses_other_counts_and_indices():
    layout = batch_instance_layout(_settings(4), 4)
    with pytest.raises(CircuitError, match="7 instances, the batch circuit has 8"):
        layout.split(["00"] * 7)
    with pytest.raises(CircuitError, match="window 4 is outside the batch of 4"):
        layout.score_index(4)
    swapped = {**layout.to_dict(), "score_indices": [0, 1, 2, 3], "input_hash_indices": [4, 5, 6, 7]}
    with pytest.raises(CircuitError, match="not the one Sentinel proves"):
        BatchInstanceLayout.from_manifest(swapped)


@pytest.mark.parametrize(("settings", "fragment"), [
    (_settings(3), "input scales \\[10, 10, 10\\]; expected 4"),
    (_settings(4, input_visibility="Public"), "needs 'hashed'"),
    (_settings(4, shapes=[[1, 2]] * 4), "expected 4 single scores"),
    (_settings(4, output_scales=[10, 10, 10, 12]), "at one scale"),
])
def test_batch_layout_refuses_a_circuit_that_is_not_k_hashed_windows(settings, fragment):
    with pytest.raises(CircuitError, match=fragment):
        batch_instance_layout(settings, 4)


def _small_onnx(path):
    """y = sigmoid(x . W + b) on a (1, 3) input: one input, one output, two initializers, named nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[0.5], [-1.0], [2.0]], dtype=np.float32), "W")
    b = numpy_helper.from_array(np.array([0.25], dtype=np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="matmul"),
             helper.make_node("Add", ["m", "b"], ["a"], name="add"),
             helper.make_node("Sigmoid", ["a"], ["y"], name="sigmoid")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_batched_onnx_renames_k_independent_copies(tmp_path):
    import onnx
    import onnxruntime as ort

    src, dst = tmp_path / "small.onnx", tmp_path / "batched.onnx"
    _small_onnx(src)
    batched_onnx(src, dst, 3)
    graph = onnx.load(str(dst)).graph
    assert [i.name for i in graph.input] == ["window_0", "window_1", "window_2"]
    assert [o.name for o in graph.output] == ["risk_0", "risk_1", "risk_2"]
    assert sorted(i.name for i in graph.initializer) == sorted(f"k{i}_{n}" for i in range(3) for n in ("W", "b"))
    assert [n.name for n in graph.node][:3] == ["k0_matmul", "k0_add", "k0_sigmoid"]
    assert list(graph.node[3].input) == ["window_1", "k1_W"] and list(graph.node[5].output) == ["risk_1"]

    single = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    batch = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    xs = np.random.default_rng(0).normal(size=(3, 1, 3)).astype(np.float32)
    outs = batch.run(None, {f"window_{i}": xs[i] for i in range(3)})
    for i in range(3):
        (expected,) = single.run(None, {"x": xs[i]})
        np.testing.assert_array_equal(outs[i], expected)
    assert not np.array_equal(outs[0], outs[1])  # the copies see their own inputs


def test_batched_onnx_refuses_a_graph_with_two_inputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "z"], ["y"])], "two",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "z")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "two.onnx"))
    with pytest.raises(CircuitError, match="2 inputs and 1 outputs"):
        batched_onnx(tmp_path / "two.onnx", tmp_path / "out.onnx", 2)
    assert not (tmp_path / "out.onnx").exists()


def test_batch_input_is_one_flat_input_per_window_in_order():
    windows = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    data = batch_input_json(windows)["input_data"]
    assert len(data) == 2 and data[1] == list(range(12, 24))


def test_batch_logrows_hold_the_rows_and_both_tables():
    base = {"lookup_range": [0, 0], "decomp_base": 16000}
    assert batch_logrows(base, 61_524, 1) == 16  # the default model at K = 4: its rows decide
    assert batch_logrows(base, 1_000, 1) == 14  # the range-check table (16,000 rows) decides
    assert batch_logrows({**base, "lookup_range": [-40_000, 40_000]}, 1_000, 1) == 17
    assert batch_logrows({**base, "lookup_range": [-40_000, 40_000]}, 1_000, 2) == 16


def test_batch_input_key_follows_the_single_build_and_k():
    single = {"input_key": "a" * 64, "artifacts": {"settings": {"sha256": "b" * 64}}}
    key = batch_input_key(single, 4)
    assert key == batch_input_key(dict(single), 4)
    assert key != batch_input_key(single, 2)
    assert key != batch_input_key({**single, "input_key": "c" * 64}, 4)
    assert key != batch_input_key({**single, "artifacts": {"settings": {"sha256": "d" * 64}}}, 4)


def test_consecutive_end_rows():
    assert consecutive_end_rows([59, 60, 61, 62], 4, 50) == [59, 60, 61, 62]
    with pytest.raises(CircuitError, match="takes 4 windows, got 3"):
        consecutive_end_rows([59, 60, 61], 4, 50)
    with pytest.raises(CircuitError, match="batch window 2 ends at row 63, not 61"):
        consecutive_end_rows([58, 59, 62, 63], 4, 50)
    with pytest.raises(CircuitError, match="batch window 1 ends at row 62, not 64"):  # descending
        consecutive_end_rows([62, 61, 60, 59], 4, 50)
    with pytest.raises(CircuitError, match="row 48 ends no complete 50-row window"):
        consecutive_end_rows([47, 48], 2, 50)


def test_batch_layout_shares_the_root_and_has_its_own_circuits(tmp_path):
    layout = ArtifactLayout(tmp_path)
    batch = layout.batch()
    assert batch.circuits_dir == tmp_path / "circuits" / "batch"
    assert batch.circuit_manifest == tmp_path / "circuits" / "batch" / "manifest.json"
    assert batch.pk.parent == batch.vk.parent == batch.test_srs(16).parent == batch.circuits_dir
    assert (batch.onnx_model, batch.proofs_dir, batch.deployments) == (layout.onnx_model, layout.proofs_dir,
                                                                       layout.deployments)
    assert batch.is_batch and not layout.is_batch
    assert batch.batch() == batch and batch.single() == layout
    assert layout.circuit_manifest == tmp_path / "circuits" / "manifest.json"
    assert layout.batch_bundle(7, 10) == batch.batch_bundle(7, 10) == tmp_path / "proofs" / "batch-7-10.json"


@pytest.mark.parametrize(("value", "ok"), [(0, True), (1, False), (2, True), (16, True), (17, False), (-1, False)])
def test_batch_windows_setting(tmp_path, value, ok):
    env = {"SENTINEL_CIRCUIT__BATCH_WINDOWS": str(value)}
    if ok:
        assert load_config(tmp_path, env=env).circuit.batch_windows == value
    else:
        with pytest.raises(ConfigError, match=r"circuit\.batch_windows must be 0 \(no batch circuit\) or 2\.\.16"):
            load_config(tmp_path, env=env)


def test_batch_windows_defaults_to_four(tmp_path):
    assert load_config(tmp_path, env={}).circuit.batch_windows == 4
