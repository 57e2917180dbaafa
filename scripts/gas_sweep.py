"""Cheaper proofs on chain, measured: EZKL 23 settings and K windows per proof for the DEFAULT model.

    python scripts/gas_sweep.py [--out FILE] [--keep DIR] [VARIANT ...]

Each variant is the committed ``models/sentinel.onnx`` built with the default
circuit settings (input hashed, weights fixed, score public, SAFE, one inner
column, range checks 16,000^2, scale 10) except for what the variant
changes; ``batch_k<K>`` are K copies of the same graph in one
ONNX (K inputs, each hashed on its own, K scores out), because the export
fixes the batch dimension at 1 (``batch_size_probe`` records what EZKL's
``batch_size`` variable does with it). Every build is in a temporary
directory; ``circuits/`` is never touched. Per variant: settings at scale 10
without calibration (the default has no lookup table to size), logrows the
smallest that holds the rows and the range-check table (one more if setup
or proving fails there), compile, a test SRS, setup, fidelity against
onnxruntime on sample-feed and stress windows, timed proofs of the build's
self-check stress window (with K-1 feed windows beside it; the median of
``--proofs``), EZKL's own verify, the Solidity verifier (npm solc, optimizer runs
1), then on a throwaway Anvil: deploy, ``verifyProof`` in a transaction
(the gas of ``bench --chain``'s verifier alone), and a flipped proof must be
rejected. For a KZG-committed input, the script checks that ``ezkl.kzg_commit``
of the window's values is one of the proof's first points. Committed points (proof and verifying key) are counted as the
``ecMul`` precompile calls of that transaction (Anvil step trace). Prints progress to
stderr and writes the JSON to ``--out`` after every variant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: name -> (run_args overrides, K windows per proof, what it is, sound as Sentinel needs it)
VARIANTS: dict[str, tuple[dict[str, Any], int, str, bool]] = {
    "default": ({}, 1, "the default circuit settings", True),
    "inner_cols_2": ({"num_inner_cols": 2}, 1, "two inner columns", True),
    "decomp_4096x3": ({"decomp_base": 4096, "decomp_legs": 3}, 1, "range checks 4096^3 (inputs up to 67.1 M)", True),
    "ignore_io_range_checks": ({"ignore_range_check_inputs_outputs": True}, 1,
                               "no range checks on the hashed input and public output", False),
    "polycommit_input": ({"input_visibility": "polycommit"}, 1,
                         "input as a KZG commitment in the proof instead of a Poseidon hash", True),
    "unsafe": ({"check_mode": "UNSAFE"}, 1, "SAFE range checks off: a lower bound, not sound", False),
    "batch_k2": ({}, 2, "2 windows in one proof (2 hashed inputs, 2 scores)", True),
    "batch_k4": ({}, 4, "4 windows in one proof (4 hashed inputs, 4 scores)", True),
    "batch_k8": ({}, 8, "8 windows in one proof (8 hashed inputs, 8 scores)", True),
    "batch_k4_polycommit": ({"input_visibility": "polycommit"}, 4,
                            "4 windows in one proof, each input a KZG commitment in the proof", True),
}
DEFAULT_ORDER = ("default", "batch_k2", "batch_k4", "batch_k8", "polycommit_input", "batch_k4_polycommit",
                 "inner_cols_2", "ignore_io_range_checks", "unsafe", "decomp_4096x3")
RESERVED_ROWS = 32
SCALE = 10
FIDELITY_TOLERANCE = 0.005


def probe_batch_size(onnx_path: Path, work: Path) -> dict[str, Any]:
    """What EZKL's ``batch_size`` variable does with the committed export (its batch dim is a fixed 1)."""
    import onnx

    from sentinel.errors import CircuitError
    from sentinel.zk import ezkl_api

    model = onnx.load(str(onnx_path))
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    result: dict[str, Any] = {"export_input_shape": dims}
    for dim_info in (model.graph.input[0], model.graph.output[0]):
        dim_info.type.tensor_type.shape.dim[0].ClearField("dim_value")
        dim_info.type.tensor_type.shape.dim[0].dim_param = "batch_size"
    symbolic = work / "symbolic-batch.onnx"
    onnx.save(model, str(symbolic))
    args = _args({})
    args.variables = [("batch_size", 2)]
    try:
        ezkl_api.gen_settings(symbolic, work / "symbolic-batch.settings.json", args)
        doc = json.loads((work / "symbolic-batch.settings.json").read_text())
        result["symbolic_batch_2"] = {"gen_settings": "ok", "num_rows": doc["num_rows"],
                                      "model_instance_shapes": doc.get("model_instance_shapes")}
        data = work / "symbolic-batch.input.json"
        windows = sample_windows(2)
        data.write_text(json.dumps({"input_data": [windows.reshape(-1).tolist()]}))
        ezkl_api.compile_circuit(symbolic, work / "symbolic-batch.compiled", work / "symbolic-batch.settings.json")
        witness = ezkl_api.gen_witness(data, work / "symbolic-batch.compiled", work / "symbolic-batch.witness.json")
        result["symbolic_batch_2"]["outputs"] = witness["pretty_elements"]["rescaled_outputs"]
    except (CircuitError, KeyError) as exc:
        result["symbolic_batch_2"] = {"error": str(exc).splitlines()[0][:300]}
    except BaseException as exc:  # a Rust panic in EZKL/tract is a pyo3 PanicException (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        result["symbolic_batch_2"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    return result


def _args(overrides: dict[str, Any]) -> Any:
    from sentinel.config import CircuitConfig
    from sentinel.zk import ezkl_api

    c = CircuitConfig()
    args = ezkl_api.run_args(overrides.get("input_visibility", c.input_visibility), c.param_visibility,
                             c.output_visibility, overrides.get("check_mode", c.check_mode),
                             overrides.get("num_inner_cols", c.num_inner_cols),
                             overrides.get("decomp_base", c.decomp_base), overrides.get("decomp_legs", c.decomp_legs))
    if "ignore_range_check_inputs_outputs" in overrides:
        args.ignore_range_check_inputs_outputs = overrides["ignore_range_check_inputs_outputs"]
    args.input_scale = SCALE
    args.param_scale = SCALE
    return args


_SAMPLES: dict[str, Any] = {}


def sample_windows(n: int) -> Any:
    """``n`` windows of the sample feed, spread over it, then stress windows (n, 50, 4) float32."""
    import numpy as np

    from sentinel.data.io import read_market_csv
    from sentinel.data.windows import cut_windows
    from sentinel.zk.build import stress_windows

    if "all" not in _SAMPLES:
        data = read_market_csv(ROOT / "data" / "sample_market_depth.csv")
        ends = np.linspace(49, len(data) - 1, 8).astype(np.int64)
        feed = cut_windows(data, 50, ends).x
        _SAMPLES["all"] = np.concatenate([stress_windows(feed[0]).astype(np.float32)[[1, 0, 2, 3]], feed])
    return _SAMPLES["all"][:n]


def precompile_calls(w3: Any, tx: Any) -> dict[str, int]:
    """Precompile calls of one transaction, from Anvil's step trace: ecMul is one per committed point."""
    from sentinel.errors import ChainError

    res = w3.provider.make_request("debug_traceTransaction", [w3.to_hex(tx), {"disableMemory": True,
                                                                              "disableStorage": True}])
    if "error" in res:
        raise ChainError(f"debug_traceTransaction: {res['error']}")
    counts = {"ecmul": 0, "ecadd": 0, "pairing": 0, "modexp": 0}
    names = {7: "ecmul", 6: "ecadd", 8: "pairing", 5: "modexp"}
    for step in res["result"]["structLogs"]:
        if step["op"] == "STATICCALL" and (which := names.get(int(step["stack"][-2], 16))):
            counts[which] += 1
    return counts


def input_commitments_in_proof(witness: Path, vk: Path, settings: Path, srs: Path, hex_proof: str, k: int) -> bool:
    """Whether each input's KZG commitment (``ezkl.kzg_commit`` of its quantised values) is one of the proof's
    first K points: what an attester could compute and sign, and a breaker compare with the proof's bytes."""
    from sentinel.zk import ezkl_api

    inputs = json.loads(witness.read_text())["inputs"]
    points = {hex_proof.removeprefix("0x")[128 * i:128 * (i + 1)] for i in range(k)}
    for values in inputs:
        (point,) = ezkl_api.call("kzg_commit", ezkl_api._ezkl().kzg_commit, values, str(vk), str(settings), str(srs))
        if bytes.fromhex(point.x)[::-1].hex() + bytes.fromhex(point.y)[::-1].hex() not in points:
            return False
    return True


def spawn_tracing_anvil(port: int, log: Path) -> Any:
    """A throwaway Anvil with step tracing on (debug_traceTransaction needs it), in its own session."""
    import subprocess

    from sentinel.chain import anvil

    with log.open("ab") as out:
        process = subprocess.Popen([*anvil.anvil_command(port, 31337), "--steps-tracing"], stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        anvil.wait_ready(f"http://127.0.0.1:{port}", 30.0, process, log)
    except BaseException:
        anvil.stop_process(process.pid)
        raise
    return process


def build_variant(name: str, work: Path, proofs: int) -> dict[str, Any]:
    import numpy as np

    from sentinel.errors import CircuitError
    from sentinel.model.export import onnx_scores
    from sentinel.toolchain.solc import compile_files
    from sentinel.zk import ezkl_api
    from sentinel.zk.batch import batched_onnx
    from sentinel.zk.build import check_verifier_source

    overrides, k, what, sound = VARIANTS[name]
    shutil.rmtree(work, ignore_errors=True)  # a rerun into --keep starts from nothing
    work.mkdir(parents=True)
    onnx = work / "model.onnx"
    if k == 1:
        onnx.symlink_to(ROOT / "models" / "sentinel.onnx")
    else:
        batched_onnx(ROOT / "models" / "sentinel.onnx", onnx, k)
    settings, compiled = work / "settings.json", work / "model.compiled"
    vk, pk, sol = work / "vk.key", work / "pk.key", work / "Halo2Verifier.sol"
    ezkl_api.gen_settings(onnx, settings, _args(overrides))
    doc = json.loads(settings.read_text())
    run = doc["run_args"]
    table = int(run["decomp_base"]) if str(run["check_mode"]).upper() == "SAFE" else 0
    logrows = math.ceil(math.log2(max(int(doc["num_rows"]), table) + RESERVED_ROWS))
    timings: dict[str, float] = {}
    windows = sample_windows(12)
    for attempt in (logrows, logrows + 1):
        doc["run_args"]["logrows"] = attempt
        settings.write_text(json.dumps(doc))
        srs = work.parent / f"kzg-TEST-ONLY-k{attempt}.srs"
        try:
            ezkl_api.compile_circuit(onnx, compiled, settings)
            if not srs.exists():
                ezkl_api.gen_srs(srs, attempt)
            t = time.perf_counter()
            ezkl_api.setup(compiled, vk, pk, srs)
            timings["setup_seconds"] = time.perf_counter() - t
            # The stress window that the build's self-check proves, then K-1 more windows.
            data, witness_path, proof_path = work / "input.json", work / "witness.json", work / "proof.json"
            data.write_text(json.dumps({"input_data": [w.reshape(-1).tolist() for w in windows[:k]]}))
            ezkl_api.gen_witness(data, compiled, witness_path)
            prove_times: list[float] = []
            for _ in range(proofs):
                t = time.perf_counter()
                ezkl_api.prove(witness_path, compiled, pk, proof_path, srs)
                prove_times.append(time.perf_counter() - t)
            logrows = attempt
            break
        except CircuitError as exc:
            if attempt != logrows:
                raise CircuitError(f"{name}: does not prove at logrows {logrows - 1} or {logrows}: {exc}") from None
            print(f"[{name}] logrows {attempt} failed ({str(exc)[:120]}); trying {attempt + 1}", file=sys.stderr)
    if not ezkl_api.verify(proof_path, settings, vk, srs):
        raise CircuitError(f"{name}: EZKL rejected its own proof")
    # Fidelity: every output of the circuit against onnxruntime, K windows at a time.
    floats = onnx_scores(ROOT / "models" / "sentinel.onnx", windows)
    circuit: list[float] = []
    for start in range(0, len(windows) - k + 1, k):
        data.write_text(json.dumps({"input_data": [w.reshape(-1).tolist() for w in windows[start:start + k]]}))
        outs = ezkl_api.gen_witness(data, compiled, work / "fidelity.witness.json")["pretty_elements"]
        circuit.extend(float(o[0]) for o in outs["rescaled_outputs"])
    err = np.abs(np.array(circuit) - floats[:len(circuit)])
    complaint = ezkl_api.render_evm_verifier(vk, settings, sol, work / "abi.json", srs)
    check_verifier_source(sol, complaint)
    verifier = compile_files([sol], optimizer_runs=1)["Halo2Verifier"]
    proof = json.loads(proof_path.read_text())
    binding = None
    if doc["run_args"]["input_visibility"] == "KZGCommit":
        binding = input_commitments_in_proof(witness_path, vk, settings, srs, proof["hex_proof"], k)
    return {
        "variant": name, "what": what, "sound_for_sentinel": sound, "windows_per_proof": k,
        "run_args": {key: doc["run_args"][key] for key in (
            "input_visibility", "check_mode", "num_inner_cols", "decomp_base", "decomp_legs",
            "ignore_range_check_inputs_outputs", "lookup_range", "logrows")},
        "num_rows": int(doc["num_rows"]), "logrows": logrows,
        "required_lookups": doc.get("required_lookups"), "required_range_checks": doc.get("required_range_checks"),
        "fidelity": {"outputs": len(circuit), "max_abs_error": round(float(err.max()), 5),
                     "passes": bool(err.max() <= FIDELITY_TOLERANCE)},
        "setup_seconds": round(timings["setup_seconds"], 2), "prove_seconds": round(float(np.median(prove_times)), 2),
        "prove_seconds_each": [round(x, 2) for x in prove_times],
        "pk_bytes": pk.stat().st_size, "input_commitments_are_first_proof_points": binding,
        "verifier": verifier, "proof": proof,
    }


def verify_on_chain(w3: Any, b: dict[str, Any]) -> dict[str, Any]:
    from sentinel.chain.bench import measure_verifier

    verifier = b.pop("verifier")
    m = measure_verifier(w3, w3.eth.accounts[0], verifier, b.pop("proof"), b["variant"])
    calls = precompile_calls(w3, m.tx)
    k = b["windows_per_proof"]
    return {**b, "public_instances": m.public_instances, "proof_bytes": m.proof_bytes,
            "verifier_runtime_bytes": m.runtime_bytes, "verify_tx_gas": m.gas,
            "verify_tx_gas_per_window": m.gas // k, "prove_seconds_per_window": round(b["prove_seconds"] / k, 2),
            "calldata_gas": m.calldata_gas, "precompile_calls": calls, "ecmul_gas": 6_000 * calls["ecmul"],
            "flipped_proof_rejected": m.flipped_proof_rejected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the JSON here after every variant  [default: stdout at the end]")
    parser.add_argument("--keep", type=Path, default=None, help="keep the circuits here  [default: a temp dir]")
    parser.add_argument("--proofs", type=int, default=3,
                        help="timed proofs per variant (median reported)  [default: 3]")
    parser.add_argument("--no-probe", action="store_true", help="skip the batch_size probe of the export")
    parser.add_argument("variants", nargs="*", metavar="VARIANT",
                        help=f"any of {', '.join(DEFAULT_ORDER)}  [default: all, in that order]")
    args = parser.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {', '.join(unknown)}; choose from {', '.join(DEFAULT_ORDER)}")
    if args.proofs < 1:
        parser.error(f"--proofs must be >= 1, got {args.proofs}")

    from web3 import Web3

    from sentinel.chain import anvil
    from sentinel.zk.ezkl_api import version

    doc: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "ezkl": version(), "model": "models/sentinel.onnx",
        "method": "scripts/gas_sweep.py: see its --help", "niceness": os.nice(0), "cpus": os.cpu_count(),
        "reference": {"bench_chain_verifier_only_tx_gas": 541_301, "bench_chain_submit_gas": 582_255,
                      "breaker_overhead_gas": 40_954},
        "complete": False, "variants": [], "failed": [],
    }

    def emit() -> None:
        text = json.dumps(doc, indent=2) + "\n"
        if args.out is not None:
            args.out.write_text(text)

    with tempfile.TemporaryDirectory(prefix="sentinel-gas-sweep-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        port = anvil.free_port()
        process = spawn_tracing_anvil(port, root / "anvil.log")
        try:
            w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
            if not args.no_probe:
                print("[probe] batch_size on the export", file=sys.stderr, flush=True)
                doc["batch_size_probe"] = probe_batch_size(ROOT / "models" / "sentinel.onnx", root)
                emit()
            for name in args.variants or DEFAULT_ORDER:
                print(f"[build] {name} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
                from sentinel.errors import SentinelError

                try:
                    built = build_variant(name, root / name, args.proofs)
                    built["load_average_1m"] = round(os.getloadavg()[0], 2)
                    row = verify_on_chain(w3, built)
                except SentinelError as exc:
                    doc["failed"].append({"variant": name, "error": str(exc).splitlines()[0][:300]})
                    print(f"[failed] {name}: {exc}", file=sys.stderr, flush=True)
                    emit()
                    continue
                doc["variants"].append(row)
                print(f"[done] {name}: rows {row['num_rows']} logrows {row['logrows']} gas {row['verify_tx_gas']} "
                      f"prove {row['prove_seconds']} s", file=sys.stderr, flush=True)
                emit()
        finally:
            anvil.stop_process(process.pid)
    doc["complete"] = True
    emit()
    if args.out is None:
        print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    from sentinel.errors import SentinelError

    try:
        main()
    except SentinelError as exc:
        raise SystemExit(f"error: {exc}") from None
