"""``submitBatch`` on a real Anvil with real batch proofs: K windows, one proof, the state of K single submits.

The batch proofs come from the tiny project's batch circuit (K = 2 copies of the
tiny model, built with its circuit), proving (``batch_circuit.build_batch_set``) the same
high- and low-scoring windows as the single proofs (``scored_bundles``), so a
batch and K single submits of the same attested windows can be compared on
one chain, each from the same snapshot.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import (
    BREAKER,
    SubmitResult,
    connect,
    contract,
    report_events,
    sign_message,
    submit_batch_signed,
)
from sentinel.chain.deploy import ZERO_ADDRESS, batch_verifier_contract, deploy_all
from sentinel.chain.encoding import (
    AttestationMessage,
    BatchBundle,
    ProofBundle,
    messages_for_batch,
    score_wad,
    submit_batch_args,
)
from sentinel.chain.keys import Key
from sentinel.config import load_config
from sentinel.errors import ChainError
from tests.integration.batch_circuit import BatchSet, build_batch_set, chain_project
from tests.integration.test_contracts import (
    ATTESTERS,
    CADENCE,
    COOLDOWN,
    GOV,
    MAX_AGE,
    NO_BATCH,
    RESET_AFTER,
    TIMELOCK,
    TRIP_AFTER,
    Env,
    codehash,
    gov,
    reverts,
)

pytestmark = pytest.mark.integration

K = 2


@pytest.fixture(scope="session")
def tiny_batch(tiny_circuit: Path, tiny_feed: Path, scored_bundles: dict[str, ProofBundle],
               tmp_path_factory: pytest.TempPathFactory) -> BatchSet:
    """The tiny model's K = 2 batch circuit and real proofs of the window pairs HH, HL and LL."""
    return build_batch_set(tiny_circuit, tiny_feed, scored_bundles, ["HH", "HL", "LL"],
                           tmp_path_factory.mktemp("batch-set"))


@pytest.fixture(scope="session")
def batch_deployed(tiny_circuit: Path, tiny_batch: BatchSet, scored_bundles: dict[str, ProofBundle],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Its own Anvil and a deployment whose breaker has the batch verifier (thresholds as test_contracts')."""
    high, low = scored_bundles["high"].score, scored_bundles["low"].score
    trip = round(high - 0.01, 4)
    reset = round(trip - 0.05, 4)
    assert trip >= 0.5 and low <= reset, f"tiny scores {low:.3f}..{high:.3f} cannot drive the breaker's bounds"
    genesis = max(b.window_end_unix for b in scored_bundles.values()) + 60
    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path_factory.mktemp("anvil-batch") / "anvil.log", timestamp=genesis)
    try:
        root = chain_project(tiny_circuit, tiny_batch, tmp_path_factory.mktemp("batch-chain-project"))
        config = load_config(root, {
            "chain.trip_threshold": trip, "chain.reset_threshold": reset, "chain.trip_after": TRIP_AFTER,
            "chain.reset_after": RESET_AFTER, "chain.cooldown_seconds": COOLDOWN, "chain.max_age_seconds": MAX_AGE,
            "chain.timelock_seconds": TIMELOCK, "chain.quorum": 2}, env={})
        deployment = deploy_all(ArtifactLayout(root), config, f"http://127.0.0.1:{port}")
        chain = connect(deployment, config)
        yield Env(chain, deployment, contract(chain, deployment, BREAKER), None, None, scored_bundles)
    finally:
        anvil.stop_process(process.pid)


@pytest.fixture
def env(batch_deployed: Env) -> Iterator[Env]:
    """The deployed system, rolled back after each test (its handed-out windows too)."""
    snapshot = batch_deployed.chain.rpc("evm_snapshot", [])
    window = batch_deployed.window
    yield batch_deployed
    assert batch_deployed.chain.rpc("evm_revert", [snapshot]) is True
    batch_deployed.window = window


def batch_messages(env: Env, bundle: BatchBundle) -> list[AttestationMessage]:
    """The next K consecutive windows, window i bound to the batch's window i input hash."""
    return [replace(env.message(env.bundles["high"]), input_hash=w.input_hash) for w in bundle.windows]


def submit_batch(env: Env, bundle: BatchBundle, messages: list[AttestationMessage] | None = None, *,
                 keys: list[list[Key]] | None = None, submitter: Key = GOV) -> list[SubmitResult]:
    """``submit_batch_signed`` of the next K windows (or ``messages``), each signed by ``keys`` (default: all)."""
    messages = messages if messages is not None else batch_messages(env, bundle)
    keys = keys or [ATTESTERS] * len(messages)
    signed = [sign_message(m, k, env.chain.chain_id, env.breaker.address) for m, k in zip(messages, keys, strict=True)]
    return submit_batch_signed(env.chain, env.breaker, bundle, signed, submitter)


def receipt_of(env: Env, result: SubmitResult) -> Any:
    from eth_typing import HexStr

    return env.chain.w3.eth.get_transaction_receipt(HexStr(result.tx_hash))


def state_without_trip_time(env: Env) -> dict[str, Any]:
    state = env.state()
    state.pop("tripped_at")
    state.pop("armed")  # depends on the block time
    return state


# --- the artifact set and the deployment ----------------------------------------------------


def test_deploy_records_and_hands_the_breaker_the_batch_verifier(env: Env, tiny_batch: BatchSet):
    d = env.deployment
    assert d.batch_windows == K and d.batch_verifier == d.address("BatchHalo2Verifier") != ZERO_ADDRESS
    assert env.chain.call(env.breaker.functions.batchVerifier(), "batchVerifier") == d.batch_verifier
    assert env.chain.call(env.breaker.functions.batchWindows(), "batchWindows") == K
    manifest = ArtifactLayout(tiny_batch.root).batch().circuit_manifest
    assert d.contracts["BatchHalo2Verifier"]["runtime_sha256"] == json.loads(
        manifest.read_text())["verifier_runtime_sha256"]
    assert d.circuit["batch"]["windows"] == K


def test_deploy_refuses_a_batch_set_of_another_size(tiny_circuit: Path, tiny_batch: BatchSet, tmp_path: Path):
    root = chain_project(tiny_circuit, tiny_batch, tmp_path / "project")
    manifest = json.loads((root / "circuits" / "manifest.json").read_text())
    manifest["batch"]["windows"] = K + 1
    with pytest.raises(ChainError, match=f"windows_per_proof {K}, but"):
        batch_verifier_contract(ArtifactLayout(root), manifest)
    assert batch_verifier_contract(ArtifactLayout(root), {**manifest, "batch": None}) is None


def test_batch_bundle_messages_are_its_windows(tiny_batch: BatchSet, scored_bundles: dict[str, ProofBundle]):
    high, low = scored_bundles["high"], scored_bundles["low"]
    assert messages_for_batch(tiny_batch.bundles["HL"]) == [
        AttestationMessage(high.window_id, high.window_end_unix, high.input_hash),
        AttestationMessage(low.window_id, low.window_end_unix, low.input_hash)]
    assert tiny_batch.bundles["HL"].score_felts == (high.score_felt, low.score_felt)


# --- accepted: the state of K single submits ------------------------------------------------


def test_a_batch_is_accepted_with_one_report_per_window(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["HL"]
    messages = batch_messages(env, bundle)
    results = submit_batch(env, bundle, messages)
    assert [r.window_id for r in results] == [m.window_id for m in messages]
    assert [r.score_wad for r in results] == [score_wad(f, bundle.score_scale) for f in bundle.score_felts]
    assert len({r.tx_hash for r in results}) == 1 and [r.events for r in results] == [["Report"]] * K
    events = report_events(env.breaker, receipt_of(env, results[0]))
    assert [name for name, _ in events] == ["Report"] * K
    assert [a["windowId"] for _, a in events] == [m.window_id for m in messages]
    assert [a["inputHash"] for _, a in events] == [w.input_hash for w in bundle.windows]
    state = env.state()
    assert state["last_window_id"] == messages[-1].window_id and state["low_streak"] == 1
    assert state["high_streak"] == 0  # the high window's streak ended with the low one after it


# (batch labels, seconds to wait before it): trip inside the 2nd batch, recovery inside the 3rd (cooldown over)
PLAN = [("HH", 0), ("HL", 0), ("LL", COOLDOWN), ("HH", 0)]


def _run(env: Env, tiny_batch: BatchSet, batched: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    """Play PLAN as batches or as single submits of the same windows; events in order and the state after each."""
    singles = {"H": env.bundles["high"], "L": env.bundles["low"]}
    events: list[Any] = []
    states = []
    for labels, wait in PLAN:
        if wait:
            env.increase_time(wait)
        bundle = tiny_batch.bundles[labels]
        messages = batch_messages(env, bundle)
        if batched:
            receipts = [receipt_of(env, submit_batch(env, bundle, messages)[0])]
        else:
            receipts = [env.chain.w3.eth.get_transaction_receipt(env.submit(singles[x], m).tx_hash)
                        for x, m in zip(labels, messages, strict=True)]
        for receipt in receipts:
            block = env.chain.w3.eth.get_block(receipt["blockNumber"])
            for name, args in report_events(env.breaker, receipt):
                events.append((name, args))
                if name == "Tripped":
                    assert env.state()["tripped_at"] == int(block["timestamp"])
        states.append(state_without_trip_time(env))
    return events, states


def test_k_windows_in_one_batch_leave_the_state_of_k_single_submits(batch_deployed: Env, tiny_batch: BatchSet):
    env = batch_deployed
    snapshot, window = env.chain.rpc("evm_snapshot", []), env.window
    try:
        single_events, single_states = _run(env, tiny_batch, batched=False)
        assert env.chain.rpc("evm_revert", [snapshot]) is True
        snapshot, env.window = env.chain.rpc("evm_snapshot", []), window
        batch_events, batch_states = _run(env, tiny_batch, batched=True)
    finally:
        assert env.chain.rpc("evm_revert", [snapshot]) is True
        env.window = window
    names = [name for name, _ in batch_events]
    assert names == ["Report", "Report", "Tripped", "Report", "Report", "Recovered", "Report", "Report",
                     "Report", "Report"]
    assert batch_events == single_events
    assert batch_states == single_states
    assert [s["tripped"] for s in batch_states] == [False, True, False, False]
    assert batch_states[-1]["high_streak"] == 2 and batch_states[2]["low_streak"] == 1


def test_a_batch_after_a_gap_starts_the_streaks_afresh(env: Env, tiny_batch: BatchSet):
    env.submit(env.bundles["high"])
    env.message(env.bundles["high"])  # one window nobody reports
    submit_batch(env, tiny_batch.bundles["HH"])
    assert env.state()["high_streak"] == 2 and env.state()["tripped"] is False  # 3 highs, not 3 in a row


# --- refused: each with its named error ------------------------------------------------------


def test_a_tampered_batch_proof_reverts(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["HL"]
    flipped = bytearray(bundle.proof)
    flipped[100] ^= 0x01
    reverts("InvalidProof", submit_batch, env, replace(bundle, proof=bytes(flipped)))


def test_scores_swapped_between_the_batch_windows_revert(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["HL"]
    h0, h1, s0, s1 = bundle.instances
    reverts("InvalidProof", submit_batch, env, replace(bundle, instances=(h0, h1, s1, s0)))


def test_batch_size_mismatches_revert(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["LL"]
    messages = batch_messages(env, bundle)
    signed = [sign_message(m, ATTESTERS, env.chain.chain_id, env.breaker.address) for m in messages]
    proof, instances, attestations, signatures = submit_batch_args(bundle, signed, 2)
    cases = {
        (K + 1, K): (proof, instances, [*attestations, attestations[-1]], signatures),
        (K - 1, K): (proof, instances, attestations, signatures[:-1]),
        (2 * K - 1, 2 * K): (proof, instances[:-1], attestations, signatures),
    }
    for (got, expected), args in cases.items():
        error = reverts("BatchSizeMismatch", env.chain.transact, env.breaker.functions.submitBatch(*args), GOV,
                        "submitBatch")
        assert error.args_ == {"got": got, "expected": expected}


def test_windows_that_are_not_consecutive_revert(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["LL"]
    first = env.message(env.bundles["low"])
    second = env.message(env.bundles["low"], skip=1)  # one window left out in between
    error = reverts("WindowsNotConsecutive", submit_batch, env, bundle, [first, second])
    assert error.args_ == {"index": 1}


def test_one_stale_window_reverts_the_batch(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["LL"]
    end = env.now() - MAX_AGE - 20  # the first window is ~20 s past reporting, the second is not
    messages = [AttestationMessage(end // CADENCE + i, end + i * CADENCE, w.input_hash)
                for i, w in enumerate(bundle.windows)]
    error = reverts("StaleWindow", submit_batch, env, bundle, messages)
    assert error.args_["windowEnd"] == end


def test_one_window_bound_to_another_hash_reverts(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["HL"]
    first, second = batch_messages(env, bundle)
    forged = replace(second, input_hash=first.input_hash)  # attests the high window's rows twice
    error = reverts("InputHashMismatch", submit_batch, env, bundle, [first, forged])
    assert error.args_ == {"proven": bundle.windows[1].input_hash, "attested": first.input_hash}


def test_one_window_short_of_signatures_reverts(env: Env, tiny_batch: BatchSet):
    bundle = tiny_batch.bundles["LL"]
    error = reverts("TooFewSignatures", submit_batch, env, bundle, keys=[ATTESTERS, ATTESTERS[:1]])
    assert error.args_ == {"got": 1, "required": 2}
    assert env.state()["last_window_id"] == 0  # nothing of the batch was applied


# --- the verifier timelock carries the batch verifier -----------------------------------------


def test_the_verifier_timelock_pins_the_batch_verifiers_code(env: Env, tiny_batch: BatchSet):
    verifier, batch = env.deployment.address("Halo2Verifier"), env.deployment.batch_verifier
    scale = env.state()["score_scale"]
    code, batch_code = codehash(env, verifier), codehash(env, batch)
    error = reverts("VerifierCodeMismatch", gov, env, env.breaker.functions.proposeVerifier(
        verifier, scale, CADENCE, code, batch, K, b"\x01" * 32))
    assert error.args_["verifier"] == batch and error.args_["actual"] == "0x" + batch_code.hex()
    reverts("ParameterOutOfBounds", gov, env, env.breaker.functions.proposeVerifier(
        verifier, scale, CADENCE, code, batch, 1, batch_code))
    receipt = gov(env, env.breaker.functions.proposeVerifier(verifier, scale, CADENCE, code, batch, K, batch_code))
    (proposed,) = env.breaker.events.VerifierChangeProposed().process_receipt(receipt)
    assert (proposed["args"]["batchVerifier"], proposed["args"]["batchWindows"],
            proposed["args"]["batchCodehash"]) == (batch, K, batch_code)
    # Other code at the batch verifier's address during the delay (here, the single verifier's) never executes.
    env.chain.rpc("anvil_setCode", [batch, "0x" + env.chain.code(verifier).hex()])
    env.increase_time(TIMELOCK + 1)
    error = reverts("VerifierCodeMismatch", gov, env, env.breaker.functions.executeVerifier())
    assert error.args_["verifier"] == batch and error.args_["expected"] == "0x" + batch_code.hex()


def test_a_verifier_change_without_a_batch_verifier_disables_batches(env: Env, tiny_batch: BatchSet):
    from web3.logs import DISCARD

    verifier, batch = env.deployment.address("Halo2Verifier"), env.deployment.batch_verifier
    gov(env, env.breaker.functions.proposeVerifier(verifier, env.state()["score_scale"], CADENCE,
                                                   codehash(env, verifier), *NO_BATCH))
    reverts("VerifierCodeMismatch", gov, env, env.breaker.functions.proposeVerifier(
        verifier, env.state()["score_scale"], CADENCE, codehash(env, verifier), ZERO_ADDRESS, 0, b"\x01" * 32))
    env.increase_time(TIMELOCK + 1)
    receipt = gov(env, env.breaker.functions.executeVerifier())
    (changed,) = env.breaker.events.BatchVerifierChanged().process_receipt(receipt, errors=DISCARD)
    assert dict(changed["args"]) == {"previous": batch, "verifier": ZERO_ADDRESS, "windows": 0}
    reverts("BatchesDisabled", submit_batch, env, tiny_batch.bundles["LL"])
    assert env.submit(env.bundles["low"]).events == ["Report"]  # single reports go on


# --- gas -----------------------------------------------------------------------------------------


def test_one_batch_costs_less_gas_than_k_single_submits(batch_deployed: Env, tiny_batch: BatchSet):
    env = batch_deployed
    snapshot, window = env.chain.rpc("evm_snapshot", []), env.window
    try:
        env.submit(env.bundles["low"])  # warm state, as in steady operation
        singles = sum(env.submit(env.bundles["low"]).gas_used for _ in range(K))
        batch = submit_batch(env, tiny_batch.bundles["LL"])[0].gas_used
    finally:
        assert env.chain.rpc("evm_revert", [snapshot]) is True
        env.window = window
    sys.stderr.write(f"\ngas: submitBatch K={K} {batch}, {K} single submits {singles} ({batch / singles:.0%})\n")
    assert batch < singles
