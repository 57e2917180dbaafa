"""``sentinel bench``: measured proving cost (a script that prints JSON, not a test).

Proving runs in a child process (``sentinel prove --all``) so its peak RSS is
the prover's own, read from ``getrusage(RUSAGE_CHILDREN)``; latencies are each
window's prove time inside that one warm process. ``--against seed`` builds the
seed project's architecture (50 steps x 4 features -> LSTM(50) -> Dense
sigmoid, EZKL's default calibration) and proves one window beside the
default model on the same machine, in a child process under a memory cap
(:mod:`sentinel.zk.guard`). Its settings are either EZKL's defaults, as the
seed ran it (input public, UNSAFE), or Sentinel's (input hashed, SAFE).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig
from sentinel.errors import CircuitError
from sentinel.zk import ezkl_api
from sentinel.zk.build import input_json
from sentinel.zk.manifest import load_manifest


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_default(layout: ArtifactLayout, data: Path, windows: int = 10) -> dict[str, Any]:
    """Prove ``windows`` consecutive windows of ``data`` in one warm child process."""
    from sentinel.data.io import read_market_csv

    manifest = load_manifest(layout)
    rows = len(read_market_csv(data))
    if not 1 <= windows <= rows - int(manifest["window"]) + 1:
        raise CircuitError(f"bench: cannot take {windows} windows from {rows} rows")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [sys.executable, "-m", "sentinel", "--root", str(layout.root), "prove", "--data", str(data),
           "--all", "--from", str(rows - windows + 1), "--json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CircuitError(f"bench: proving failed: {last}")
    results = json.loads(done.stdout)["bundles"]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    times = [r["prove_seconds"] for r in results]
    bundle = Path(results[0]["bundle"])
    proof = json.loads(bundle.read_text())["ezkl_proof"]
    return {
        "windows": len(times),
        "prove_seconds_median": statistics.median(times),
        "prove_seconds_p95": _percentile(times, 95),
        "prove_seconds_all": times,
        "prove_process_wall_seconds": wall,
        "peak_rss_bytes_proving": max(peak, before) * 1024,
        "proof_bytes": len(proof["proof"]),
        "setup_seconds": manifest["build_seconds"].get("setup"),
        "pk_bytes": manifest["pk_bytes"],
        "logrows": manifest["circuit"]["logrows"],
        "num_rows": manifest["circuit"]["num_rows"],
        "fidelity_max_abs_error": manifest["fidelity"]["max_abs_error"],
        "verifier_runtime_bytes": manifest["verifier_runtime_bytes"],
    }


def seed_onnx(path: Path, seed: int = 0) -> None:
    """The seed's architecture: 50 x 4 -> LSTM(50, unrolled) -> Dense(1, sigmoid), untrained."""
    from sentinel.model.backend import import_keras
    from sentinel.model.export import onnx_bytes

    keras = import_keras()

    inputs = keras.Input((50, 4))
    x = keras.layers.LSTM(50, unroll=True, kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    path.write_bytes(onnx_bytes(keras.Model(inputs, outputs), 50))


SEED_SETTINGS = ("ezkl-default", "sentinel")


def seed_run_args(mode: str, config: SentinelConfig) -> Any:
    """Run args of the seed build: EZKL's own defaults, or Sentinel's visibility and SAFE checks."""
    if mode == "ezkl-default":
        return ezkl_api.default_run_args()
    if mode == "sentinel":
        c = config.circuit
        return ezkl_api.run_args(c.input_visibility, c.param_visibility, c.output_visibility, c.check_mode,
                                 c.num_inner_cols, c.decomp_base, c.decomp_legs)
    raise CircuitError(f"seed settings '{mode}' unknown; choose one of {', '.join(SEED_SETTINGS)}")


def seed_build_and_prove(config: SentinelConfig, window: np.ndarray, mode: str, work: Path,
                         phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build the seed architecture in ``work`` and prove ``window`` (50 x 4) once; heavy: run it guarded.

    ``phase(name)`` is called as each phase starts (the memory guard names the phase it stopped in).
    """
    def enter(name: str) -> None:
        if phase is not None:
            phase(name)

    onnx, settings, compiled = work / "seed.onnx", work / "settings.json", work / "seed.compiled"
    vk, pk, srs = work / "vk.key", work / "pk.key", work / "kzg.srs"
    data = work / "input.json"
    enter("export")
    seed_onnx(onnx)
    # The seed normalised outside its model: give it standardised inputs.
    scaled = (window - window.mean(0)) / (window.std(0) + 1e-9)
    data.write_text(json.dumps(input_json(scaled[None])))
    enter("calibrate")
    t = time.perf_counter()
    ezkl_api.gen_settings(onnx, settings, seed_run_args(mode, config))
    ezkl_api.calibrate(data, onnx, settings, None, None)
    ezkl_api.compile_circuit(onnx, compiled, settings)
    calibrate = time.perf_counter() - t
    doc = json.loads(settings.read_text())
    logrows = int(doc["run_args"]["logrows"])
    enter("srs")
    ezkl_api.gen_srs(srs, logrows)
    enter("setup")
    t = time.perf_counter()
    ezkl_api.setup(compiled, vk, pk, srs)
    setup = time.perf_counter() - t
    enter("witness")
    witness = work / "witness.json"
    ezkl_api.gen_witness(data, compiled, witness)
    enter("prove")
    t = time.perf_counter()
    ezkl_api.prove(witness, compiled, pk, work / "proof.json", srs)
    prove = time.perf_counter() - t
    run_args = doc["run_args"]
    return {
        "settings": mode,
        "input_visibility": run_args["input_visibility"], "check_mode": run_args["check_mode"],
        "num_inner_cols": run_args["num_inner_cols"], "scale": run_args["input_scale"],
        "logrows": logrows, "num_rows": doc["num_rows"],
        "calibrate_seconds": calibrate, "setup_seconds": setup, "prove_seconds": prove,
        "pk_bytes": pk.stat().st_size,
    }


def bench_seed(layout: ArtifactLayout, window: np.ndarray, mode: str = "ezkl-default",
               cap_bytes: int | None = None) -> dict[str, Any]:
    """Build and prove the seed architecture once in a child process under a memory cap.

    Expect many minutes and 12+ GB. Past ``cap_bytes`` (default 85 % of this
    machine's memory) the child is killed and :class:`~sentinel.zk.guard.MemoryCapExceeded`
    says in which phase, instead of the kernel's OOM killer ending it silently.
    """
    from sentinel.zk.guard import run_guarded, total_memory_bytes

    if mode not in SEED_SETTINGS:
        raise CircuitError(f"seed settings '{mode}' unknown; choose one of {', '.join(SEED_SETTINGS)}")
    cap = cap_bytes or int(total_memory_bytes() * 0.85)
    with tempfile.TemporaryDirectory(prefix="sentinel-seed-bench-") as tmp:
        work = Path(tmp)
        np.save(work / "window.npy", window)
        cmd = [sys.executable, "-m", "sentinel.cli.seed_child", str(layout.root), mode, str(work)]
        done = run_guarded(cmd, cap, f"seed architecture ({mode} settings)")
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CircuitError(f"seed bench failed: {last}")
        result: dict[str, Any] = json.loads(done.stdout)  # seed_child prints one JSON object
    result["peak_rss_bytes"] = done.peak_rss_bytes
    result["memory_cap_bytes"] = cap
    return result
