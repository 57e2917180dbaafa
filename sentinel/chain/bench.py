"""``sentinel bench --chain``: gas and code size, measured on a throwaway local Anvil.

Deploys the circuit's verifier, the breaker, token and vault on a fresh Anvil
(its own free port; genesis just after the bundle's window so the window is
fresh), attests a real proof bundle with the demo attesters, submits it, and
calls the verifier alone in a transaction of its own. With a batch circuit
built, it also submits a real batch proof (the newest batch bundle, else the
feed's latest K windows, proved now) in one ``submitBatch``. Nothing of the
project's chain state or deployments is touched.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import BREAKER, connect, contract, sign_attestation, sign_message, submit_signed
from sentinel.chain.deploy import deploy_contracts
from sentinel.chain.encoding import AttestationMessage, read_bundle
from sentinel.chain.keys import ANVIL_CHAIN_ID, attester_keys, role_key
from sentinel.config import SentinelConfig
from sentinel.errors import ChainError
from sentinel.zk.manifest import load_manifest

EIP170_LIMIT = 24_576


@dataclass(frozen=True)
class VerifyMeasure:
    """One generated verifier measured in a transaction of its own (the gas scripts and sweeps)."""

    tx: Any  #: the verifyProof transaction's hash
    gas: int  #: its gasUsed, calldata included
    calldata_gas: int
    proof_bytes: int
    public_instances: int
    runtime_bytes: int
    flipped_proof_rejected: bool  #: the same proof with one byte flipped is refused (call reverts or returns false)


def measure_verifier(w3: Any, sender: str, verifier: Any, proof_doc: dict[str, Any], what: str) -> VerifyMeasure:
    """Deploy ``verifier`` (a compiled Halo2Verifier) from ``sender``, verify ``proof_doc`` (an EZKL proof: hex_proof,
    instances) in a transaction, and check the proof with one byte flipped is refused. A valid proof that reverts
    is a :class:`ChainError` naming ``what``."""
    from web3.exceptions import Web3Exception

    from sentinel.zk.instances import felt_from_hex

    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": sender, "data": "0x" + verifier.bytecode.hex(), "gas": 29_000_000}))
    deployed = w3.eth.contract(address=receipt["contractAddress"], abi=verifier.abi)
    proof = bytes.fromhex(proof_doc["hex_proof"].removeprefix("0x"))
    instances = [felt_from_hex(h) for group in proof_doc["instances"] for h in group]
    tx = deployed.functions.verifyProof(proof, instances).transact({"from": sender, "gas": 20_000_000})
    mined = w3.eth.wait_for_transaction_receipt(tx)
    if mined["status"] != 1:
        raise ChainError(f"{what}: the verifier reverted on a valid proof")
    flipped = bytearray(proof)
    flipped[100] ^= 1
    try:
        rejects = not deployed.functions.verifyProof(bytes(flipped), instances).call({"from": sender})
    except Web3Exception:  # a revert is a rejection too
        rejects = True
    return VerifyMeasure(tx, int(mined["gasUsed"]), calldata_gas(bytes(w3.eth.get_transaction(tx)["input"])),
                         len(proof), len(instances), len(verifier.runtime), rejects)


def latest_bundle(layout: ArtifactLayout) -> Path:
    """The newest proof bundle under proofs/ proven for the current circuit's vk."""
    manifest = load_manifest(layout)
    path = layout.newest_bundle(manifest["artifacts"]["vk"]["sha256"])
    if path is None:
        raise ChainError(f"{layout.proofs_dir}: no proof bundle for the current circuit",
                         hint="run `sentinel prove --window latest` first, or pass --bundle")
    return path


def batch_bundle(layout: ArtifactLayout, config: SentinelConfig, progress: Any = None) -> Path:
    """The newest batch bundle proven with the batch circuit, else the feed's latest K windows proved now."""
    from sentinel.data.io import read_market_csv
    from sentinel.zk.manifest import load_batch_manifest
    from sentinel.zk.prove import Prover

    batch = layout.batch()
    path = layout.newest_bundle(load_batch_manifest(layout)["artifacts"]["vk"]["sha256"], "batch-*.json")
    if path is not None:
        return path
    feed = layout.feed(config.data.feed)
    prover = Prover(batch, config)
    market = read_market_csv(feed)
    k = int(prover.manifest["windows_per_proof"])
    if progress:
        progress("bench", f"proving the latest {k} windows of {feed} in one batch proof")
    return prover.prove_windows(market, list(range(len(market) - k, len(market)))).bundle


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas: 16 per non-zero byte, 4 per zero byte."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


def bench_chain(layout: ArtifactLayout, config: SentinelConfig, bundle_path: Path | None = None,
                progress: Any = None) -> dict[str, Any]:
    """Deploy gas per contract, submit gas (verification included), verifier-only gas, code sizes.

    ``submit_gas`` is a steady-state report; ``submit_gas_first_report`` the first one ever (it also
    initialises the breaker's state slot).
    """
    from eth_typing import HexStr

    path = bundle_path or latest_bundle(layout)
    bundle = read_bundle(path)
    batch_path = batch_bundle(layout, config, progress) if load_manifest(layout).get("batch") else None
    port = anvil.free_port()
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-chain-") as tmp:
        process = anvil.spawn(port, ANVIL_CHAIN_ID, log=Path(tmp) / "anvil.log",
                              timestamp=bundle.window_end_unix + 60,
                              deadline_seconds=config.chain.startup_seconds)
        try:
            url = f"http://127.0.0.1:{port}"
            deployment = deploy_contracts(layout, config, url, progress)
            chain = connect(deployment, config, url)
            breaker = contract(chain, deployment, BREAKER)
            signed = sign_attestation(bundle, attester_keys(ANVIL_CHAIN_ID, ""), chain.chain_id, breaker.address)
            submitter = role_key("submitter", ANVIL_CHAIN_ID, env={})
            first = submit_signed(chain, breaker, bundle, signed, submitter)
            # The first report writes the state slot from zero (20k gas more); the steady state is the next one:
            # the same proven window attested as the following window id, one cadence later.
            later = AttestationMessage(bundle.window_id + 1, bundle.window_end_unix + 60, bundle.input_hash)
            signed = sign_message(later, attester_keys(ANVIL_CHAIN_ID, ""), chain.chain_id, breaker.address)
            result = submit_signed(chain, breaker, bundle, signed, submitter)
            verifier = contract(chain, deployment, "Halo2Verifier")
            alone = chain.transact(verifier.functions.verifyProof(bundle.proof, list(bundle.instances)), submitter,
                                   "verifier alone")
            submit_input = bytes(chain.w3.eth.get_transaction(HexStr(result.tx_hash))["input"])
            batch = _submit_batch(chain, url, breaker, batch_path, bundle.window_id + 2, submitter) if batch_path \
                else None
            verify_input = bytes(chain.w3.eth.get_transaction(alone["transactionHash"])["input"])
            try:
                hardfork = chain.rpc("anvil_nodeInfo", []).get("hardFork")
            except ChainError:
                hardfork = None
        finally:
            anvil.stop_process(process.pid)
    runtime = deployment.contracts["Halo2Verifier"]["runtime_bytes"]
    return {
        "bundle": str(path),
        "window_id": bundle.window_id,
        "score": result.score,
        "hardfork": hardfork,
        "compiler": deployment.compiler,
        "deploy_gas": {name: c["gas_used"] for name, c in deployment.contracts.items()},
        "runtime_bytes": {name: c["runtime_bytes"] for name, c in deployment.contracts.items()},
        "verifier_runtime_bytes": runtime,
        "verifier_under_eip170": runtime <= EIP170_LIMIT,
        "submit_gas": result.gas_used,
        "submit_gas_first_report": first.gas_used,
        "submit_calldata_bytes": len(submit_input),
        "submit_calldata_gas": calldata_gas(submit_input),
        "signatures_sent": deployment.quorum,
        "verifier_only_tx_gas": int(alone["gasUsed"]),
        "verifier_only_calldata_gas": calldata_gas(verify_input),
        "breaker_overhead_gas": result.gas_used - int(alone["gasUsed"]),
        "proof_bytes": len(bundle.proof),
        "submit_target_gas": 450_000,
        "submit_within_target": result.gas_used <= 450_000,
        "batch": batch,
    }


def _submit_batch(chain: Any, url: str, breaker: Any, path: Path, first_id: int, submitter: Any) -> dict[str, Any]:
    """Steady-state ``submitBatch`` of a real batch proof: its windows attested as the ids from ``first_id`` on
    (right after the last report, as a relay sends them while tripped; the proof binds hashes and scores, not
    ids), the chain's clock moved so the newest is not in the future."""
    from eth_typing import HexStr

    from sentinel.chain.breaker import submit_batch_signed
    from sentinel.chain.encoding import read_batch_bundle
    from sentinel.data.windows import FUTURE_SKEW_SECONDS

    bundle = read_batch_bundle(path)
    cadence = int(chain.call(breaker.functions.cadence(), "reading cadence"))
    messages = [AttestationMessage(first_id + i, (first_id + i) * cadence, w.input_hash)
                for i, w in enumerate(bundle.windows)]
    newest = messages[-1].window_end - FUTURE_SKEW_SECONDS + 1
    if newest > anvil.chain_time(url):
        anvil.warp(url, newest)
    signed = [sign_message(m, attester_keys(ANVIL_CHAIN_ID, ""), chain.chain_id, breaker.address) for m in messages]
    results = submit_batch_signed(chain, breaker, bundle, signed, submitter)
    data = bytes(chain.w3.eth.get_transaction(HexStr(results[0].tx_hash))["input"])
    gas = results[0].gas_used
    return {"bundle": str(path), "windows": bundle.size, "submit_batch_gas": gas,
            "submit_batch_gas_per_window": round(gas / bundle.size), "calldata_bytes": len(data),
            "calldata_gas": calldata_gas(data)}
