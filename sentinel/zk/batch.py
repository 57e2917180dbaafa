"""The batch circuit set: K windows in one proof (``circuits/batch``).

K renamed copies of the committed ONNX graph side by side in one ONNX
(inputs ``window_0..window_{K-1}``, each Poseidon-hashed; outputs
``risk_0..risk_{K-1}``, public) prove K windows at once, and one
``verifyProof`` checks them (measured in docs/gas-sweep-2026-11-27.json: -75 %
gas per window at K = 4). The breaker uses it while it is tripped, when many
consecutive windows must be reported.

The batch circuit takes the single circuit's run arguments verbatim (scales,
lookup range, range checks), only its logrows grows with its rows. Each
window's Poseidon hash is exactly the single circuit's (the inputs quantise
the same). Its score need not be: with K >= 2 copies EZKL 23 rounds some
windows one or two quanta (2^-score_scale) away from the single circuit
(measured on the default model: 6 of 32 test windows, up to 2 quanta, the
batch no farther from onnxruntime than the single). So the build checks the
batch scores against onnxruntime like the single build does (fidelity), and
proves and verifies one batch whose hashes must equal the single circuit's
and whose scores must be within ``circuit.fidelity_tolerance`` of them; the
manifest records the largest difference. Its input key is the single build's
key and K: it is rebuilt exactly when the single circuit or K changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.artifacts import ArtifactLayout, atomic_write_text, sha256_file
from sentinel.errors import CircuitError
from sentinel.zk import ezkl_api
from sentinel.zk.layout import BatchInstanceLayout, batch_instance_layout
from sentinel.zk.witness import witness_scores

if TYPE_CHECKING:
    import numpy as np

    from sentinel.config import SentinelConfig
    from sentinel.zk.build import BuildResult, Progress

#: Bumped when the batch construction changes in a way its input key would not see.
BATCH_FORMAT = 1


def batched_onnx(src: Path, dst: Path, k: int) -> None:
    """K renamed copies of the graph in ``src`` side by side: inputs window_0.., outputs risk_0..

    Every other name (nodes, initializers, intermediate values) of copy ``i``
    gets the prefix ``k<i>_`` so the copies share nothing.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise CircuitError(f"{src}: {len(graph.input)} inputs and {len(graph.output)} outputs; batching needs one each")
    (inp,), (out,) = graph.input, graph.output
    nodes: list[Any] = []
    inits: list[Any] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    for i in range(k):
        def name(n: str, i: int = i) -> str:
            if n == inp.name:
                return f"window_{i}"
            if n == out.name:
                return f"risk_{i}"
            return f"k{i}_{n}" if n else n

        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = name(node.name) if node.name else ""
            copy.ClearField("input")
            copy.ClearField("output")
            copy.input.extend(name(n) for n in node.input)
            copy.output.extend(name(n) for n in node.output)
            nodes.append(copy)
        for init in graph.initializer:
            c = onnx.TensorProto()
            c.CopyFrom(init)
            c.name = name(init.name)
            inits.append(c)
        for src_info, target in ((inp, inputs), (out, outputs)):
            info = onnx.ValueInfoProto()
            info.CopyFrom(src_info)
            info.name = name(src_info.name)
            target.append(info)
    merged = helper.make_graph(nodes, f"{graph.name}_k{k}", inputs, outputs, inits)
    batched = helper.make_model(merged, opset_imports=model.opset_import)
    batched.ir_version = model.ir_version
    onnx.checker.check_model(batched)
    onnx.save(batched, str(dst))


def batch_input_json(windows: np.ndarray) -> dict[str, Any]:
    """EZKL input data for the batch circuit: (K, W, 4) windows -> one flat input per window, in order."""
    import numpy as np

    return {"input_data": [np.asarray(w, dtype=np.float64).reshape(-1).tolist() for w in windows]}


def batch_logrows(run_args: dict[str, Any], num_rows: int, max_columns: int) -> int:
    """Smallest logrows holding the batch circuit's rows, its range-check table and the single circuit's lookup
    table over at most ``max_columns`` columns (the tables do not grow with K; the rows do)."""
    from sentinel.zk.build import RESERVED_ROWS

    low, high = run_args["lookup_range"]
    table = math.ceil((int(high) - int(low) + 1) / max(1, max_columns)) if high > low else 0
    needed = max(int(num_rows), int(run_args.get("decomp_base") or 0), table)
    return max(1, math.ceil(math.log2(needed + RESERVED_ROWS)))


def batch_input_key(single_manifest: dict[str, Any], windows: int) -> str:
    """The batch build's input key: the single build's key (ONNX, circuit settings, SRS, EZKL), its settings, K."""
    payload = json.dumps({"single": single_manifest["input_key"],
                          "single_settings": single_manifest["artifacts"]["settings"]["sha256"],
                          "windows": windows, "format": BATCH_FORMAT}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def consecutive_end_rows(end_rows: list[int], windows: int, window: int) -> list[int]:
    """``end_rows`` (0-based) if they are ``windows`` consecutive rows ascending, each ending a full window."""
    rows = [int(r) for r in end_rows]
    if len(rows) != windows:
        raise CircuitError(f"a batch proof takes {windows} windows, got {len(rows)}")
    if rows[0] < window - 1:
        raise CircuitError(f"row {rows[0] + 1} ends no complete {window}-row window")
    for i, row in enumerate(rows):
        if row != rows[0] + i:
            raise CircuitError(f"batch window {i} ends at row {row + 1}, not {rows[0] + i + 1}: the windows of one "
                               "batch proof must end on consecutive rows, ascending")
    return rows


def build_batch_circuit(layout: ArtifactLayout, config: SentinelConfig, single: dict[str, Any],
                        srs: Path | None, *, force: bool, say: Progress) -> BuildResult:
    """Build (or confirm up to date) the batch set under ``circuits/batch`` from the single circuit ``single``."""
    from sentinel.model.pipeline import card_test_windows, load_card
    from sentinel.zk.build import (
        TEST_SRS_WARNING,
        BuildResult,
        resolve_srs,
        sample_windows,
        solidity_verifier,
        stress_windows,
        up_to_date,
        write_verifier_artifact,
    )

    k = config.circuit.batch_windows
    batch = layout.batch()
    key = batch_input_key(single, k)
    if not force and (manifest := up_to_date(batch, key)) is not None:
        return BuildResult(manifest, skipped=True, seconds={})

    seconds: dict[str, float] = {}
    single_settings = json.loads((layout.root / single["artifacts"]["settings"]["path"]).read_text())
    single_run = single_settings["run_args"]
    single_compiled = layout.root / single["artifacts"]["compiled_circuit"]["path"]
    batch.ensure(batch.circuits_dir)
    with tempfile.TemporaryDirectory(prefix="sentinel-batch-circuit-") as tmp:
        work = Path(tmp)
        onnx, settings, compiled = work / "model.onnx", work / "settings.json", work / "model.compiled"
        vk, pk = work / "vk.key", work / "pk.key"

        t = time.perf_counter()
        say("batch", f"{k} copies of the model in one circuit: settings as the single circuit's, "
                     f"{k} hashed windows, {k} public scores")
        batched_onnx(layout.onnx_model, onnx, k)
        c = config.circuit
        args = ezkl_api.run_args(c.input_visibility, c.param_visibility, c.output_visibility, c.check_mode,
                                 c.num_inner_cols, c.decomp_base, c.decomp_legs)
        args.input_scale = int(single_run["input_scale"])
        args.param_scale = int(single_run["param_scale"])
        args.scale_rebase_multiplier = int(single_run["scale_rebase_multiplier"])
        ezkl_api.gen_settings(onnx, settings, args)
        doc = json.loads(settings.read_text())
        logrows = batch_logrows(single_run, int(doc["num_rows"]), c.lookup_columns)
        doc["run_args"] = {**single_run, "logrows": logrows}
        settings.write_text(json.dumps(doc))
        ezkl_api.compile_circuit(onnx, compiled, settings)
        instances = batch_instance_layout(doc, k)
        seconds["compile"] = time.perf_counter() - t

        t = time.perf_counter()
        srs_path, srs_kind = resolve_srs(batch, srs, logrows, say, "batch srs")
        seconds["srs"] = time.perf_counter() - t

        t = time.perf_counter()
        say("batch setup", f"proving and verifying keys for 2^{logrows} rows ({doc['num_rows']} used)")
        ezkl_api.setup(compiled, vk, pk, srs_path)
        seconds["setup"] = time.perf_counter() - t

        t = time.perf_counter()
        card = load_card(layout)
        seed = int(card["config"]["seed"])
        test = card_test_windows(layout, config)
        say("batch fidelity", f"batch circuit vs onnxruntime on {c.fidelity_windows} test windows, {k} at a time")
        fidelity = _fidelity(work, compiled, layout.onnx_model, sample_windows(test, c.fidelity_windows, seed + 202), k)
        seconds["fidelity"] = time.perf_counter() - t
        if not fidelity["max_abs_error"] <= c.fidelity_tolerance:
            raise CircuitError(f"batch fidelity: max |circuit - float| = {fidelity['max_abs_error']:.4f} over "
                               f"{fidelity['windows']} windows exceeds {c.fidelity_tolerance}")

        t = time.perf_counter()
        say("batch self-check", f"{k} windows (a stress window first) in one batch proof that verifies; hashes "
                                "equal and scores close to the single circuit's")
        calibration = sample_windows(test, c.calibration_windows, seed + 101)
        windows = _self_check_windows(stress_windows(calibration[0])[1], sample_windows(test, k - 1, seed + 303), k)
        check = _self_check(work, compiled, pk, vk, settings, srs_path, single_compiled, instances, windows,
                            c.fidelity_tolerance)
        seconds["self_check"] = time.perf_counter() - t

        t = time.perf_counter()
        say("batch verifier", "rendering Halo2Verifier.sol and compiling it with npm solc")
        verifier = solidity_verifier(vk, settings, work / "Halo2Verifier.sol", work / "Halo2Verifier.abi", srs_path,
                                     c.optimizer_runs)
        seconds["verifier"] = time.perf_counter() - t

        for src, dst in ((onnx, batch.circuit_onnx), (settings, batch.circuit_settings),
                         (compiled, batch.compiled_circuit), (vk, batch.vk),
                         (work / "Halo2Verifier.sol", batch.verifier_sol)):
            shutil.copyfile(src, dst)
        write_verifier_artifact(batch.verifier_artifact, verifier, c.optimizer_runs)
        shutil.copyfile(pk, batch.pk)
    atomic_write_text(batch.pk.with_name(batch.pk.name + ".build"), key + "\n")

    def entry(path: Path) -> dict[str, str]:
        return {"path": str(path.relative_to(layout.root)), "sha256": sha256_file(path)}

    run_args = doc["run_args"]
    manifest = {
        "manifest_version": single["manifest_version"],
        "input_key": key,
        "windows_per_proof": k,
        # The batch ONNX is derived from the single set's: K renamed copies (sentinel.zk.batch.batched_onnx).
        "source": {"onnx": single["artifacts"]["onnx"], "single_input_key": single["input_key"],
                   "single_manifest": str(layout.circuit_manifest.relative_to(layout.root))},
        "artifacts": {
            "onnx": entry(batch.circuit_onnx),
            "settings": entry(batch.circuit_settings),
            "compiled_circuit": entry(batch.compiled_circuit),
            "vk": entry(batch.vk),
            "verifier_source": entry(batch.verifier_sol),
            "verifier_artifact": entry(batch.verifier_artifact),
        },
        "verifier_runtime_sha256": hashlib.sha256(verifier.runtime).hexdigest(),
        "verifier_runtime_bytes": len(verifier.runtime),
        "pk_sha256": sha256_file(batch.pk),
        "pk_bytes": batch.pk.stat().st_size,
        "srs": {"kind": srs_kind, "path": str(srs_path if srs is not None else srs_path.relative_to(layout.root)),
                "sha256": sha256_file(srs_path), "logrows": logrows,
                "warning": TEST_SRS_WARNING if srs is None else None},
        "circuit": {**single["circuit"], "logrows": logrows, "num_rows": doc.get("num_rows"),
                    "lookup_table_columns": _table_columns(run_args)},
        "instances": instances.to_dict(),
        "window": single["window"],
        "cadence_seconds": single["cadence_seconds"],
        "fidelity": fidelity,
        "self_check": check,
        "build_seconds": {name: round(v, 2) for name, v in seconds.items()},
        "versions": {"ezkl": ezkl_api.version(), "solc": verifier.compiler},
    }
    atomic_write_text(batch.circuit_manifest, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return BuildResult(manifest, skipped=False, seconds=seconds)


def _table_columns(run_args: dict[str, Any]) -> int:
    from sentinel.zk.build import table_columns

    low, high = run_args["lookup_range"]
    return table_columns(run_args) if high > low else 0


def _self_check_windows(stress: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """K windows: the stress window, then test windows (cycled if there are fewer than K - 1)."""
    import numpy as np

    rest = [test[i % len(test)] for i in range(k - 1)] if len(test) else [stress] * (k - 1)
    return np.stack([stress, *rest])


def _fidelity(work: Path, compiled: Path, onnx: Path, windows: np.ndarray, k: int) -> dict[str, Any]:
    """Every batch output against onnxruntime, K windows per witness (the last batch filled from the first)."""
    import numpy as np

    from sentinel.model.export import onnx_scores

    floats = onnx_scores(onnx, windows)
    circuit = np.zeros(len(windows))
    for start in range(0, len(windows), k):
        picks = [(start + i) % len(windows) for i in range(k)]
        data = work / "fidelity.json"
        data.write_text(json.dumps(batch_input_json(windows[picks])))
        scores = witness_scores(ezkl_api.gen_witness(data, compiled, work / "fidelity.witness.json"))
        for i, pick in enumerate(picks):
            circuit[pick] = scores[i]
    err = np.abs(circuit - floats)
    worst = int(np.argmax(err))
    return {"windows": len(windows), "max_abs_error": float(err.max()), "mean_abs_error": float(err.mean()),
            "worst": {"circuit": float(circuit[worst]), "float": float(floats[worst])}}


def _self_check(work: Path, compiled: Path, pk: Path, vk: Path, settings: Path, srs: Path, single_compiled: Path,
                instances: BatchInstanceLayout, windows: np.ndarray, tolerance: float) -> dict[str, Any]:
    """Prove ``windows`` in one batch and verify it against the single circuit's hashes and scores.

    This is where the instance layout is checked against EZKL itself: the
    proof's instance ``hash_index(i)`` must be window i's Poseidon hash as
    the single circuit computes it, and ``score_index(i)`` the witness's
    score of window i, within ``tolerance`` of the single circuit's.
    """
    from sentinel.zk.build import input_json
    from sentinel.zk.instances import felt_from_hex, fixed_to_float
    from sentinel.zk.witness import witness_input_hash, witness_input_hashes, witness_score

    data, witness_path, proof_path = work / "self-check.json", work / "self-check.witness.json", work / "proof.json"
    data.write_text(json.dumps(batch_input_json(windows)))
    start = time.perf_counter()
    witness = ezkl_api.gen_witness(data, compiled, witness_path)
    try:
        ezkl_api.prove(witness_path, compiled, pk, proof_path, srs)
    except CircuitError as exc:
        raise CircuitError(f"batch self-check: proving {len(windows)} windows failed ({exc})") from None
    seconds = time.perf_counter() - start
    if not ezkl_api.verify(proof_path, settings, vk, srs):
        raise CircuitError("batch self-check: the batch circuit's own proof does not verify with its vk")
    hashes, scores = instances.split([str(f) for f in json.loads(proof_path.read_text())["instances"][0]])
    batch_hashes, batch_scores = witness_input_hashes(witness), witness_scores(witness)
    differences: list[float] = []
    for i, window in enumerate(windows):
        one = work / f"single-{i}.json"
        one.write_text(json.dumps(input_json(window[None])))
        single = ezkl_api.gen_witness(one, single_compiled, work / f"single-{i}.witness.json")
        single_hash, single_score = felt_from_hex(witness_input_hash(single)), witness_score(single)
        if not felt_from_hex(hashes[i]) == felt_from_hex(batch_hashes[i]) == single_hash:
            raise CircuitError(f"batch self-check: window {i}'s input hash at instance {instances.hash_index(i)} "
                               "is not the single circuit's hash of that window")
        proven = fixed_to_float(felt_from_hex(scores[i]), instances.score_scale)
        if abs(proven - batch_scores[i]) > 1e-9 or abs(proven - single_score) > tolerance:
            raise CircuitError(f"batch self-check: window {i}'s score at instance {instances.score_index(i)} is "
                               f"{proven} (witness {batch_scores[i]}), the single circuit's {single_score}")
        differences.append(abs(proven - single_score))
    return {"windows": len(windows), "scores": batch_scores, "verified": True, "hashes_equal_single": True,
            "max_score_difference_vs_single": max(differences), "prove_seconds": round(seconds, 2)}
