"""Gas floor of EZKL's Solidity verifier: the cheapest circuits, verified on a real Anvil. Prints JSON.

    python scripts/verifier_gas_floor.py [--keep DIR]

How low can `verifyProof` go before any model is in the circuit? Four minimal
circuits, each built like Sentinel's (params fixed, output public, SAFE,
one inner column, decomposition 4096^3, scale 10, a locally generated
test SRS), proven once, verified off-chain, then rendered to Solidity,
compiled with the pinned npm solc (optimizer runs 1, as `circuit build`
does), deployed to a throwaway Anvil and called in a transaction:

    public_linear   x[1,4] public           -> MatMul[4,1]
    public_sigmoid  x[1,50,4] public        -> mean over rows -> MatMul[4,1] -> Sigmoid
    hashed_linear   x[1,50,4] hashed        -> mean over rows -> MatMul[4,1]
    hashed_sigmoid  x[1,50,4] hashed        -> mean over rows -> MatMul[4,1] -> Sigmoid
    polycommit_linear x[1,50,4] committed (KZG, in the proof) -> mean over rows -> MatMul[4,1]

`verify_tx_gas` is the whole transaction (base 21,000 and calldata
included), the same quantity as `sentinel bench --chain`'s
`verifier_only_tx_gas`; the breaker adds its own checks on top.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("public_linear", "public_sigmoid", "hashed_linear", "hashed_sigmoid", "polycommit_linear")
SIGMOID_RANGE = 4096  # +-4 at scale 10: the table this toy's sigmoid needs, far below Sentinel's


def write_onnx(kind: str, path: Path) -> tuple[int, ...]:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([[0.5], [-0.25], [0.75], [0.125]], dtype=np.float32), "w")]
    nodes = []
    if kind == "public_linear":
        shape: tuple[int, ...] = (1, 4)
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["z"]))
    else:
        shape = (1, 50, 4)
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"))
        nodes.append(helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0))
        nodes.append(helper.make_node("MatMul", ["m", "w"], ["z"]))
    nodes.append(helper.make_node("Sigmoid" if kind.endswith("sigmoid") else "Identity", ["z"], ["y"]))
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return shape


def build_and_prove(kind: str, work: Path) -> dict[str, Any]:
    import numpy as np

    from sentinel.errors import CircuitError
    from sentinel.toolchain.solc import compile_files
    from sentinel.zk import ezkl_api
    from sentinel.zk.build import check_verifier_source

    work.mkdir(parents=True, exist_ok=True)
    onnx, settings, compiled = work / "model.onnx", work / "settings.json", work / "model.compiled"
    vk, pk, srs, data = work / "vk.key", work / "pk.key", work / "kzg.srs", work / "input.json"
    witness, proof_path, sol = work / "witness.json", work / "proof.json", work / "Halo2Verifier.sol"
    shape = write_onnx(kind, onnx)
    rng = np.random.default_rng(0)
    data.write_text(json.dumps({"input_data": [rng.uniform(-2, 2, size=math.prod(shape)).tolist()]}))
    args = ezkl_api.run_args(kind.split("_", maxsplit=1)[0], "fixed", "public", "SAFE", 1, 4096, 3)
    args.input_scale = 10
    args.param_scale = 10
    ezkl_api.gen_settings(onnx, settings, args)
    doc = json.loads(settings.read_text())
    need = max(doc["num_rows"], 4096)
    if kind.endswith("sigmoid"):
        doc["run_args"]["lookup_range"] = [-SIGMOID_RANGE, SIGMOID_RANGE]
        need = max(need, 2 * SIGMOID_RANGE + 1)
    logrows = math.ceil(math.log2(need + 64))  # room for the blinding rows
    doc["run_args"]["logrows"] = logrows
    settings.write_text(json.dumps(doc))
    ezkl_api.compile_circuit(onnx, compiled, settings)
    ezkl_api.gen_srs(srs, logrows)
    ezkl_api.setup(compiled, vk, pk, srs)
    ezkl_api.gen_witness(data, compiled, witness)
    start = time.perf_counter()
    ezkl_api.prove(witness, compiled, pk, proof_path, srs)
    prove_seconds = time.perf_counter() - start
    if not ezkl_api.verify(proof_path, settings, vk, srs):
        raise CircuitError(f"{kind}: EZKL rejected its own proof")
    check_verifier_source(sol, ezkl_api.render_evm_verifier(vk, settings, sol, work / "abi.json", srs))
    verifier = compile_files([sol], optimizer_runs=1)["Halo2Verifier"]
    proof = json.loads(proof_path.read_text())
    return {"kind": kind, "logrows": logrows, "num_rows": doc["num_rows"], "prove_seconds": round(prove_seconds, 2),
            "verifier": verifier, "proof": proof}


def verify_on_anvil(built: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    from web3 import Web3

    from sentinel.chain import anvil
    from sentinel.chain.bench import measure_verifier

    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=work / "anvil.log")
    results = []
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        for b in built:
            m = measure_verifier(w3, w3.eth.accounts[0], b["verifier"], b["proof"], b["kind"])
            results.append({
                "kind": b["kind"], "logrows": b["logrows"], "num_rows": b["num_rows"],
                "prove_seconds": b["prove_seconds"], "public_instances": m.public_instances,
                "proof_bytes": m.proof_bytes, "verifier_runtime_bytes": m.runtime_bytes, "verify_tx_gas": m.gas,
                "calldata_gas": m.calldata_gas, "flipped_proof_rejected": m.flipped_proof_rejected,
            })
    finally:
        anvil.stop_process(process.pid)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, default=None, help="keep the circuits here  [default: a temp dir]")
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"any of {', '.join(VARIANTS)}  [default: all]")
    args = parser.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="sentinel-gas-floor-") as tmp:
        root = args.keep or Path(tmp)
        built = []
        for kind in args.variants or VARIANTS:
            print(f"[build] {kind}", file=sys.stderr, flush=True)
            built.append(build_and_prove(kind, root / kind))
        from sentinel.zk.ezkl_api import version

        print(json.dumps({"ezkl": version(), "variants": verify_on_anvil(built, root)}, indent=2))


if __name__ == "__main__":
    from sentinel.errors import SentinelError

    try:
        main()
    except SentinelError as exc:
        raise SystemExit(f"error: {exc}") from None
