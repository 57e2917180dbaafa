"""The contracts on a real Anvil with real EZKL proofs: every attack reverts with its named error.

One Anvil per test run (free port, readiness polled), evm_snapshot/evm_revert
around each test. Proofs come from the session's tiny circuit: the window the
tiny model scores highest and the one it scores lowest (conftest ``scored_bundles``); the breaker is
deployed with thresholds between those two real scores, so the state machine
is driven by real, verified proofs. A second tiny model (same architecture,
one weight changed) gives a proof for another model's vk.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil, eip712
from sentinel.chain.breaker import (
    BREAKER,
    TOKEN,
    VAULT,
    breaker_state,
    connect,
    contract,
    report_events,
    sign_message,
    submit_signed,
)
from sentinel.chain.client import Chain
from sentinel.chain.deploy import ZERO_ADDRESS, Deployment, deploy_all
from sentinel.chain.encoding import (
    AttestationMessage,
    ProofBundle,
    SignedAttestation,
    read_bundle,
    score_wad,
    to_wad,
)
from sentinel.chain.keys import Key, demo_key
from sentinel.config import load_config
from sentinel.errors import ContractRevert
from sentinel.zk.instances import BN254_R
from sentinel.zk.prove import BatchProveResult
from tests.integration.batch_circuit import chain_project

pytestmark = pytest.mark.integration

GOV, GUARDIAN, USER, STRANGER = demo_key(0), demo_key(1), demo_key(5), demo_key(7)
ATTESTERS = [demo_key(i) for i in (2, 3, 4)]
TRIP_AFTER, RESET_AFTER, COOLDOWN, MAX_AGE, TIMELOCK = 3, 2, 600, 1800, 3600
CADENCE = 60  # the tiny circuit's, as the session's circuit is built with the default config
#: proposeVerifier's batch verifier, windows and code hash for a model without a batch circuit
NO_BATCH = (ZERO_ADDRESS, 0, b"\0" * 32)


# --- session fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def other_model_bundle(other_model_circuit: Path, tiny_feed: Path) -> ProofBundle:
    """A proof of the feed's latest window from another model (see conftest ``other_model_circuit``)."""
    from sentinel.data.io import read_market_csv
    from sentinel.zk.prove import Prover

    config = load_config(other_model_circuit, env={})
    result = Prover(ArtifactLayout(other_model_circuit), config).prove(read_market_csv(tiny_feed), "latest")
    return read_bundle(result.bundle)


@dataclass
class Env:
    """The deployed system and helpers shared by the tests."""

    chain: Chain
    deployment: Deployment
    breaker: Any
    vault: Any
    token: Any
    bundles: dict[str, ProofBundle]
    window: int = 0  #: the last window id handed out

    def now(self) -> int:
        return int(self.chain.block()["timestamp"])

    def message(self, bundle: ProofBundle, *, skip: int = 0, window_end: int | None = None,
                **changes: int) -> AttestationMessage:
        """An attestation of the window after the last one handed out (``skip`` more after it), bound to
        ``bundle``'s input hash, its id derived from its end as the breaker does; the chain's clock is moved
        to the window's end when it lies ahead. A window too old to report is replaced by a recent one."""
        if window_end is None:
            now = self.now()
            wid = self.window + 1 + skip
            if wid * CADENCE + 30 < now - MAX_AGE + 60:
                wid = (now - 60) // CADENCE
            window_end = wid * CADENCE + 30
            if window_end > now:
                self.increase_time(window_end - now)
        self.window = max(self.window, window_end // CADENCE)
        base = AttestationMessage(window_end // CADENCE, window_end, bundle.input_hash)
        return replace(base, **changes)

    def submit(self, bundle: ProofBundle, message: AttestationMessage | None = None, *,
               keys: list[Key] | None = None, chain_id: int | None = None, breaker: str | None = None,
               quorum: int | None = None, submitter: Any = GOV, signed: SignedAttestation | None = None):
        message = message or self.message(bundle)
        signed = signed or sign_message(message, ATTESTERS if keys is None else keys,
                                        chain_id or self.chain.chain_id, breaker or self.breaker.address)
        return submit_signed(self.chain, self.breaker, bundle, signed, submitter, quorum=quorum)

    def increase_time(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine", [])

    def state(self) -> dict[str, Any]:
        return breaker_state(self.chain, self.breaker)


@pytest.fixture(scope="session")
def node(scored_bundles: dict[str, ProofBundle], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Anvil for the session, on a free port, genesis just after the proven windows."""
    genesis = max(b.window_end_unix for b in scored_bundles.values()) + 60
    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path_factory.mktemp("anvil") / "anvil.log", timestamp=genesis)
    yield f"http://127.0.0.1:{port}"
    anvil.stop_process(process.pid)


@pytest.fixture(scope="session")
def deployed(node: str, tiny_circuit: Path, scored_bundles: dict[str, ProofBundle],
             tmp_path_factory: pytest.TempPathFactory) -> Env:
    """Verifier, breaker, token and vault deployed with thresholds between the two real scores."""
    high, low = scored_bundles["high"].score, scored_bundles["low"].score
    trip = round(high - 0.01, 4)
    reset = round(trip - 0.05, 4)
    assert trip >= 0.5 and low <= reset, f"tiny scores {low:.3f}..{high:.3f} cannot drive the breaker's bounds"
    root = chain_project(tiny_circuit, None, tmp_path_factory.mktemp("chain-project"))  # batches: test_contracts_batch
    config = load_config(root, {
        "chain.trip_threshold": trip, "chain.reset_threshold": reset, "chain.trip_after": TRIP_AFTER,
        "chain.reset_after": RESET_AFTER, "chain.cooldown_seconds": COOLDOWN, "chain.max_age_seconds": MAX_AGE,
        "chain.timelock_seconds": TIMELOCK, "chain.quorum": 2}, env={})
    deployment = deploy_all(ArtifactLayout(root), config, node)
    chain = connect(deployment, config)
    return Env(chain, deployment, contract(chain, deployment, BREAKER), contract(chain, deployment, VAULT),
               contract(chain, deployment, TOKEN), scored_bundles)


@pytest.fixture
def env(deployed: Env) -> Iterator[Env]:
    """The deployed system, rolled back after each test."""
    snapshot = deployed.chain.rpc("evm_snapshot", [])
    yield deployed
    assert deployed.chain.rpc("evm_revert", [snapshot]) is True


def reverts(name: str, call, *args: Any, **kwargs: Any) -> ContractRevert:
    """Run ``call`` and require a revert with the custom error ``name``."""
    with pytest.raises(ContractRevert) as info:
        call(*args, **kwargs)
    assert info.value.error == name, str(info.value)
    return info.value


def gov(env: Env, function: Any, key: Any = GOV) -> Any:
    return env.chain.transact(function, key, "governance call")


def codehash(env: Env, address: str) -> bytes:
    return env.chain.codehash(address)


# --- deployment -----------------------------------------------------------------------


def test_deployment_pins_the_circuit_verifier(env: Env, tiny_circuit: Path):
    manifest = json.loads((tiny_circuit / "circuits" / "manifest.json").read_text())
    verifier = env.deployment.contracts["Halo2Verifier"]
    assert verifier["runtime_sha256"] == manifest["verifier_runtime_sha256"]
    assert verifier["runtime_bytes"] == manifest["verifier_runtime_bytes"] <= 24_576
    assert env.state()["verifier"] == verifier["address"]
    assert env.state()["score_scale"] == manifest["instances"]["score_scale"]
    assert env.state()["attesters"] == [k.address for k in ATTESTERS]
    assert env.state()["tripped"] is False


def test_eip712_digest_matches_the_contract(env: Env):
    message = AttestationMessage(123456, 1_700_000_000, env.bundles["high"].input_hash)
    on_chain = env.chain.call(env.breaker.functions.attestationDigest(message.as_tuple()), "digest")
    assert bytes(on_chain) == eip712.digest(env.chain.chain_id, env.breaker.address, message)
    assert bytes(on_chain) != eip712.digest(env.chain.chain_id + 1, env.breaker.address, message)


def test_score_decoding_matches_python_including_negative_felts(env: Env):
    for felt, scale in [(0, 10), (1024, 10), (700, 10), (BN254_R - 1024, 10), (BN254_R - 3, 12), (5, 0)]:
        on_chain = env.chain.call(env.breaker.functions.scoreWad(felt, scale), "scoreWad")
        assert on_chain == score_wad(felt, scale)
    assert env.chain.call(env.breaker.functions.scoreWad(BN254_R - 1024, 10), "scoreWad") == -10**18


# --- a valid report --------------------------------------------------------------------


def test_valid_report_is_accepted_and_its_event_carries_what_an_auditor_needs(env: Env):
    bundle = env.bundles["low"]
    message = env.message(bundle)
    result = env.submit(bundle, message)
    assert result.events == ["Report"]
    assert result.window_id == message.window_id
    assert result.score_wad == score_wad(bundle.score_felt, bundle.score_scale)
    assert result.score == pytest.approx(bundle.score, abs=1e-12)
    assert result.tripped is False
    receipt = env.chain.w3.eth.get_transaction_receipt(result.tx_hash)
    (name, report), = report_events(env.breaker, receipt)
    assert name == "Report"
    assert report["inputHash"] == bundle.input_hash
    assert report["windowEnd"] == message.window_end
    assert report["submitter"] == GOV.address
    state = env.state()
    assert state["last_window_id"] == message.window_id and state["low_streak"] == 1 and state["high_streak"] == 0


# --- attacks: each reverts with its named error -------------------------------------------


def test_tampered_proof_reverts(env: Env):
    bundle = env.bundles["high"]
    flipped = bytearray(bundle.proof)
    flipped[100] ^= 0x01
    reverts("InvalidProof", env.submit, replace(bundle, proof=bytes(flipped)))


def test_truncated_proof_reverts(env: Env):
    bundle = env.bundles["high"]
    reverts("InvalidProof", env.submit, replace(bundle, proof=bundle.proof[:-32]))


def test_proof_for_another_models_vk_reverts(env: Env, other_model_bundle: ProofBundle):
    assert other_model_bundle.vk_sha256 != env.bundles["high"].vk_sha256
    reverts("InvalidProof", env.submit, other_model_bundle)


def test_score_swapped_between_valid_proofs_reverts(env: Env):
    high, low = env.bundles["high"], env.bundles["low"]
    forged = replace(low, instances=(low.instances[0], high.instances[1]))
    reverts("InvalidProof", env.submit, forged)


def test_replayed_window_id_reverts(env: Env):
    bundle = env.bundles["low"]
    message = env.message(bundle)
    env.submit(bundle, message)
    error = reverts("WindowNotNewer", env.submit, bundle, message)
    assert error.args_ == {"windowId": message.window_id, "lastWindowId": message.window_id}
    error = reverts("WindowNotNewer", env.submit, bundle, env.message(bundle, window_end=message.window_end - CADENCE))
    assert error.args_ == {"windowId": message.window_id - 1, "lastWindowId": message.window_id}


def test_a_window_id_is_its_end_over_the_cadence(env: Env):
    """Security #18.2: an attested id of 2^64-1 was accepted, and every later report reverted for good."""
    bundle = env.bundles["low"]
    message = env.message(bundle)
    error = reverts("WindowIdMismatch", env.submit, bundle, replace(message, window_id=2**64 - 1))
    assert error.args_ == {"windowId": 2**64 - 1, "expected": message.window_end // CADENCE}
    reverts("WindowIdMismatch", env.submit, bundle, replace(message, window_id=message.window_id + 1))
    assert env.submit(bundle, message).window_id == message.window_end // CADENCE  # reporting goes on
    assert env.submit(bundle).window_id == message.window_id + 1


def test_a_model_with_another_cadence_keeps_reporting(env: Env):
    """Security #18.2: after an upgrade to another cadence, ids fell below the last one and reporting halted."""
    bundle = env.bundles["low"]
    last = env.submit(bundle)
    verifier = env.deployment.address("Halo2Verifier")
    gov(env, env.breaker.functions.proposeVerifier(verifier, env.state()["score_scale"], 5 * CADENCE,
                                                   codehash(env, verifier), *NO_BATCH))
    env.increase_time(TIMELOCK + 1)
    receipt = gov(env, env.breaker.functions.executeVerifier())
    (changed,) = env.breaker.events.VerifierChanged().process_receipt(receipt)
    assert changed["args"]["cadence"] == 5 * CADENCE and env.state()["cadence_seconds"] == 5 * CADENCE
    end = env.now() - 30
    assert end // (5 * CADENCE) < last.window_id  # an id at the new cadence is far below the old ids
    result = env.submit(bundle, AttestationMessage(end // (5 * CADENCE), end, bundle.input_hash))
    assert result.window_id == end // (5 * CADENCE)
    same_window = end - end % (5 * CADENCE)
    reverts("WindowNotNewer", env.submit, bundle, AttestationMessage(end // (5 * CADENCE), same_window,
                                                                     bundle.input_hash))


def test_stale_window_reverts(env: Env):
    bundle = env.bundles["low"]
    reverts("StaleWindow", env.submit, bundle, env.message(bundle, window_end=env.now() - MAX_AGE - 60))


def test_window_from_the_future_reverts(env: Env):
    bundle = env.bundles["low"]
    reverts("WindowInFuture", env.submit, bundle, env.message(bundle, window_end=env.now() + 3600))


def test_window_goes_stale_as_time_passes(env: Env):
    bundle = env.bundles["low"]
    message = env.message(bundle)
    env.increase_time(MAX_AGE + 120)
    reverts("StaleWindow", env.submit, bundle, message)


def test_non_attester_signature_reverts(env: Env):
    error = reverts("NotAttester", env.submit, env.bundles["low"], keys=[ATTESTERS[0], STRANGER])
    assert error.args_["signer"] == STRANGER.address


def test_too_few_signatures_reverts(env: Env):
    error = reverts("TooFewSignatures", env.submit, env.bundles["low"], keys=[ATTESTERS[1]])
    assert error.args_ == {"got": 1, "required": 2}


def test_one_attester_signing_twice_reverts(env: Env):
    reverts("SignersNotAscending", env.submit, env.bundles["low"], keys=[ATTESTERS[0], ATTESTERS[0]])


def test_malleated_or_malformed_signature_reverts(env: Env):
    secp256k1_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    bundle = env.bundles["low"]
    message = env.message(bundle)
    signed = sign_message(message, ATTESTERS[:2], env.chain.chain_id, env.breaker.address)
    (a, sig_a), second = signed.signatures
    r, s_value, v = sig_a[:32], int.from_bytes(sig_a[32:64], "big"), sig_a[64]
    twin = r + (secp256k1_n - s_value).to_bytes(32, "big") + bytes([55 - v])  # same signer, high s
    for bad in (twin, sig_a[:64]):
        forged = replace(signed, signatures=((a, bad), second))
        index = forged.ordered_signatures().index(bad)
        error = reverts("InvalidSignature", env.submit, bundle, message, signed=forged)
        assert error.args_ == {"index": index}
    assert env.submit(bundle, message, signed=signed).window_id == message.window_id


def test_signature_for_another_chain_reverts(env: Env):
    reverts("NotAttester", env.submit, env.bundles["low"], chain_id=1)


def test_signature_for_another_breaker_reverts(env: Env):
    reverts("NotAttester", env.submit, env.bundles["low"], breaker=env.vault.address)


def test_input_hash_not_matching_the_attestation_reverts(env: Env):
    bundle = env.bundles["low"]
    error = reverts("InputHashMismatch", env.submit, bundle,
                    env.message(bundle, input_hash=env.bundles["high"].input_hash))
    assert error.args_["proven"] == bundle.input_hash


def test_instance_at_or_above_the_modulus_reverts(env: Env):
    bundle = env.bundles["low"]
    aliased_score = replace(bundle, instances=(bundle.instances[0], bundle.instances[1] + BN254_R))
    assert reverts("InstanceNotInField", env.submit, aliased_score).args_ == {"index": 1}
    aliased_hash = replace(bundle, instances=(bundle.instances[0] + BN254_R, bundle.instances[1]))
    message = env.message(bundle, input_hash=bundle.input_hash + BN254_R)
    assert reverts("InstanceNotInField", env.submit, aliased_hash, message).args_ == {"index": 0}


def test_wrong_instance_count_reverts(env: Env):
    bundle = env.bundles["low"]
    reverts("InstanceCountMismatch", env.submit, replace(bundle, instances=(*bundle.instances, 0)))


def test_a_manual_trip_is_not_lifted_by_reports(env: Env):
    """Security #18.3: two calm reports after the cooldown recovered a guardian's trip."""
    gov(env, env.breaker.functions.trip(), GUARDIAN)
    env.increase_time(COOLDOWN + 1)
    for _ in range(RESET_AFTER + 1):
        assert env.submit(env.bundles["low"]).tripped is True
    assert env.state()["tripped"] is True
    receipt = gov(env, env.breaker.functions.recover())
    assert [(n, a["byGovernance"]) for n, a in report_events(env.breaker, receipt)] == [("Recovered", True)]


def test_the_guardian_can_make_an_automatic_trip_manual(env: Env):
    """Security #18.3: the guardian could not re-arm while the breaker was tripped by reports."""
    for _ in range(TRIP_AFTER):
        env.submit(env.bundles["high"])
    assert env.state()["tripped"] is True
    receipt = gov(env, env.breaker.functions.trip(), GUARDIAN)
    assert [(n, a["byGuardian"]) for n, a in report_events(env.breaker, receipt)] == [("Tripped", True)]
    reverts("AlreadyTripped", gov, env, env.breaker.functions.trip(), GUARDIAN)
    env.increase_time(COOLDOWN + 1)
    for _ in range(RESET_AFTER + 1):
        assert env.submit(env.bundles["low"]).tripped is True


def test_new_parameters_start_new_streaks(env: Env):
    """Security #18.6: a streak counted under the old parameters carried over a setParams."""
    state = env.state()
    same = (to_wad(state["trip_threshold"]), to_wad(state["reset_threshold"]), TRIP_AFTER, RESET_AFTER,
            COOLDOWN, MAX_AGE, 2)
    for _ in range(TRIP_AFTER - 1):
        env.submit(env.bundles["high"])
    assert env.state()["high_streak"] == TRIP_AFTER - 1
    gov(env, env.breaker.functions.setParams(same))
    assert env.state()["high_streak"] == 0
    assert env.submit(env.bundles["high"]).tripped is False


def test_guardian_cannot_untrip(env: Env):
    receipt = gov(env, env.breaker.functions.trip(), GUARDIAN)
    assert [(n, a["byGuardian"]) for n, a in report_events(env.breaker, receipt)] == [("Tripped", True)]
    assert env.state()["tripped"] is True
    reverts("NotGovernance", gov, env, env.breaker.functions.recover(), GUARDIAN)
    reverts("AlreadyTripped", gov, env, env.breaker.functions.trip(), GUARDIAN)
    reverts("NotGuardian", gov, env, env.breaker.functions.trip(), STRANGER)
    assert env.state()["tripped"] is True


def test_parameters_outside_bounds_revert(env: Env):
    state = env.state()
    good = (to_wad(state["trip_threshold"]), to_wad(state["reset_threshold"]), TRIP_AFTER, RESET_AFTER,
            COOLDOWN, MAX_AGE, 2)
    cases = {
        "tripThreshold": (to_wad(0.4), to_wad(0.1), *good[2:]),
        "resetThreshold": (good[0], good[0] - to_wad(0.01), *good[2:]),
        "tripAfter": (*good[:2], 0, *good[3:]),
        "resetAfter": (*good[:3], 5000, *good[4:]),
        "cooldown": (*good[:4], 10, *good[5:]),
        "maxAge": (*good[:5], 10 * 86400, good[6]),
    }
    for name, params in cases.items():
        error = reverts("ParameterOutOfBounds", gov, env, env.breaker.functions.setParams(params))
        assert error.args_ == {"name": name}
    reverts("ParameterOutOfBounds", gov, env, env.breaker.functions.setQuorum(4))
    reverts("ParameterOutOfBounds", gov, env, env.breaker.functions.setQuorum(0))
    reverts("NotGovernance", gov, env, env.breaker.functions.setParams(good), GUARDIAN)
    receipt = gov(env, env.breaker.functions.setParams((*good[:4], 1200, MAX_AGE, 2)))
    (event,) = env.breaker.events.ParamsChanged().process_receipt(receipt)
    assert event["args"]["cooldown"] == 1200 and env.state()["cooldown_seconds"] == 1200


def test_verifier_change_goes_through_the_timelock(env: Env, other_model_bundle: ProofBundle, tiny_circuit: Path):
    from sentinel.chain.deploy import verifier_contract

    other_root = other_model_bundle.path.parents[1]
    new_verifier, manifest = verifier_contract(ArtifactLayout(other_root))
    deployed = env.chain.deploy(new_verifier, [], GOV)
    scale = manifest["instances"]["score_scale"]
    reverts("NoPendingVerifier", gov, env, env.breaker.functions.executeVerifier())
    code = codehash(env, deployed.address)
    propose = env.breaker.functions.proposeVerifier(deployed.address, scale, CADENCE, code, *NO_BATCH)
    reverts("NotGovernance", gov, env, propose, GUARDIAN)
    receipt = gov(env, env.breaker.functions.proposeVerifier(deployed.address, scale, CADENCE, code, *NO_BATCH))
    (proposed,) = env.breaker.events.VerifierChangeProposed().process_receipt(receipt)
    assert proposed["args"]["eta"] == env.now() + TIMELOCK and proposed["args"]["codehash"] == code
    error = reverts("TimelockNotElapsed", gov, env, env.breaker.functions.executeVerifier())
    assert error.args_["eta"] == proposed["args"]["eta"]
    env.increase_time(TIMELOCK // 2)
    reverts("TimelockNotElapsed", gov, env, env.breaker.functions.executeVerifier())
    reverts("InvalidProof", env.submit, other_model_bundle)  # still the old model
    env.increase_time(TIMELOCK // 2 + 1)
    receipt = gov(env, env.breaker.functions.executeVerifier())
    (changed,) = env.breaker.events.VerifierChanged().process_receipt(receipt)
    assert changed["args"]["verifier"] == deployed.address
    assert env.submit(other_model_bundle).score_wad == score_wad(other_model_bundle.score_felt, scale)
    reverts("InvalidProof", env.submit, env.bundles["low"])  # the old model's proofs no longer pass


def test_a_cancelled_verifier_change_cannot_execute(env: Env, other_model_bundle: ProofBundle):
    verifier = env.deployment.address("Halo2Verifier")
    gov(env, env.breaker.functions.proposeVerifier(verifier, 10, CADENCE, codehash(env, verifier), *NO_BATCH))
    gov(env, env.breaker.functions.cancelVerifier())
    env.increase_time(TIMELOCK + 1)
    reverts("NoPendingVerifier", gov, env, env.breaker.functions.executeVerifier())
    reverts("NotAContract", gov, env,
            env.breaker.functions.proposeVerifier(STRANGER.address, 10, CADENCE, b"\0" * 32, *NO_BATCH))


def test_the_verifier_timelock_pins_code_not_an_address(env: Env, other_model_bundle: ProofBundle):
    """Security #18.4: code swapped in at the proposed address during the delay never executes."""
    verifier = env.deployment.address("Halo2Verifier")
    scale = env.state()["score_scale"]
    error = reverts("VerifierCodeMismatch", gov, env,
                    env.breaker.functions.proposeVerifier(verifier, scale, CADENCE, b"\x01" * 32, *NO_BATCH))
    assert error.args_["actual"] == "0x" + codehash(env, verifier).hex()
    gov(env, env.breaker.functions.proposeVerifier(verifier, scale, CADENCE, codehash(env, verifier), *NO_BATCH))
    # What a metamorphic or upgradeable verifier does: other code at the same address (here, the
    # other model's verifier, which accepts that model's proofs).
    from sentinel.chain.deploy import verifier_contract

    other, _ = verifier_contract(ArtifactLayout(other_model_bundle.path.parents[1]))
    swapped = env.chain.deploy(other, [], GOV)
    swapped_code = env.chain.code(swapped.address)
    env.chain.rpc("anvil_setCode", [verifier, "0x" + swapped_code.hex()])
    env.increase_time(TIMELOCK + 1)
    error = reverts("VerifierCodeMismatch", gov, env, env.breaker.functions.executeVerifier())
    assert error.args_["actual"] == "0x" + codehash(env, swapped.address).hex() != error.args_["expected"]


def test_a_score_scale_that_does_not_fit_the_circuit_halts_instead_of_tripping(env: Env):
    """Security #18.4: the same verifier re-proposed with scale 0 made every ordinary window trip."""
    verifier = env.deployment.address("Halo2Verifier")
    gov(env, env.breaker.functions.proposeVerifier(verifier, 0, CADENCE, codehash(env, verifier), *NO_BATCH))
    env.increase_time(TIMELOCK + 1)
    gov(env, env.breaker.functions.executeVerifier())
    high = env.bundles["high"]  # its felt is >= 2^(scale-1): at scale 0 the score reads as hundreds
    error = reverts("ScoreOutOfRange", env.submit, high)
    assert error.args_["score"] == high.score_felt * 10**18
    assert env.state()["tripped"] is False


def test_attester_set_changes_are_governed_and_logged(env: Env):
    receipt = gov(env, env.breaker.functions.addAttester(STRANGER.address))
    (added,) = env.breaker.events.AttesterAdded().process_receipt(receipt)
    assert added["args"]["attester"] == STRANGER.address
    env.submit(env.bundles["low"], keys=[ATTESTERS[0], STRANGER])
    reverts("AttesterExists", gov, env, env.breaker.functions.addAttester(STRANGER.address))
    reverts("NotGovernance", gov, env, env.breaker.functions.addAttester(USER.address), GUARDIAN)
    receipt = gov(env, env.breaker.functions.removeAttester(STRANGER.address))
    assert len(env.breaker.events.AttesterRemoved().process_receipt(receipt)) == 1
    reverts("NotAttester", env.submit, env.bundles["low"], keys=[ATTESTERS[0], STRANGER])
    gov(env, env.breaker.functions.setQuorum(3))
    reverts("ParameterOutOfBounds", gov, env, env.breaker.functions.removeAttester(ATTESTERS[0].address))


def test_governance_moves_in_two_steps(env: Env):
    reverts("NotGovernance", gov, env, env.breaker.functions.transferGovernance(GUARDIAN.address), GUARDIAN)
    gov(env, env.breaker.functions.transferGovernance(USER.address))
    assert env.chain.call(env.breaker.functions.governance(), "governance") == GOV.address
    reverts("NotPendingGovernance", gov, env, env.breaker.functions.acceptGovernance(), STRANGER)
    receipt = gov(env, env.breaker.functions.acceptGovernance(), USER)
    (changed,) = env.breaker.events.GovernanceChanged().process_receipt(receipt)
    assert dict(changed["args"]) == {"previous": GOV.address, "governance": USER.address}
    reverts("NotGovernance", gov, env, env.breaker.functions.setQuorum(1))  # the old governance is out
    gov(env, env.breaker.functions.setQuorum(1), USER)


# --- behaviour ----------------------------------------------------------------------------


def test_trips_after_n_consecutive_high_scores_only(env: Env):
    high, low = env.bundles["high"], env.bundles["low"]
    for _ in range(TRIP_AFTER - 1):
        assert env.submit(high).tripped is False
    assert env.submit(low).tripped is False  # the streak breaks
    assert env.state()["high_streak"] == 0
    for _ in range(TRIP_AFTER - 1):
        assert env.submit(high).tripped is False
    final = env.submit(high, submitter=STRANGER)  # anyone holding a valid, attested proof
    assert final.tripped is True and final.events == ["Tripped", "Report"]
    receipt = env.chain.w3.eth.get_transaction_receipt(final.tx_hash)
    tripped = dict(report_events(env.breaker, receipt))["Tripped"]
    assert tripped == {"windowId": final.window_id, "by": STRANGER.address, "byGuardian": False}
    state = env.state()
    assert state["tripped"] is True and state["tripped_at"] == env.now()


def test_cherry_picked_windows_do_not_trip_the_breaker(env: Env):
    """Security #18.1: of six windows high, high, low, low, low, high, reporting only the highs tripped it."""
    high, low = env.bundles["high"], env.bundles["low"]
    assert env.submit(high).tripped is False
    assert env.submit(high).tripped is False
    picked = env.submit(high, env.message(high, skip=3))  # the three calm windows in between left out
    assert picked.tripped is False and picked.events == ["Report"]
    state = env.state()
    assert state["high_streak"] == 1 and state["tripped"] is False
    # Six such windows reported in full (after a gap, so they start a run of their own) do not trip it either.
    assert env.submit(high, env.message(high, skip=1)).tripped is False
    for bundle in (high, low, low, low, high):
        assert env.submit(bundle).tripped is False
    assert env.state()["high_streak"] == 1


def test_calm_windows_far_apart_do_not_recover_the_breaker(env: Env):
    """Security #18.1: two calm windows 18 windows apart recovered it while the windows between were high."""
    high, low = env.bundles["high"], env.bundles["low"]
    for _ in range(TRIP_AFTER):
        env.submit(high)
    env.increase_time(COOLDOWN)
    assert env.submit(low).tripped is True
    assert env.submit(low, env.message(low, skip=17)).tripped is True  # 17 windows skipped: a new run of 1
    assert env.state()["low_streak"] == 1
    recovered = env.submit(low)  # the next window: two calm windows in a row
    assert recovered.tripped is False and recovered.events == ["Recovered", "Report"]


def test_recovery_needs_m_low_scores_and_the_cooldown(env: Env):
    high, low = env.bundles["high"], env.bundles["low"]
    for _ in range(TRIP_AFTER):
        env.submit(high)
    assert env.state()["tripped"] is True
    for _ in range(RESET_AFTER + 1):  # enough low scores, but inside the cooldown
        assert env.submit(low).tripped is True
    assert env.submit(high).tripped is True  # a high score breaks the low streak
    env.increase_time(COOLDOWN)
    for _ in range(RESET_AFTER - 1):
        assert env.submit(low).tripped is True  # cooldown over, streak not long enough yet
    recovered = env.submit(low)
    assert recovered.tripped is False and recovered.events == ["Recovered", "Report"]
    state = env.state()
    assert state["tripped"] is False and state["low_streak"] == 0 and state["tripped_at"] is None


def test_governance_can_recover_at_once(env: Env):
    gov(env, env.breaker.functions.trip(), GUARDIAN)
    receipt = gov(env, env.breaker.functions.recover())
    assert [(n, a["byGovernance"]) for n, a in report_events(env.breaker, receipt)] == [("Recovered", True)]
    assert env.state()["tripped"] is False
    reverts("NotTripped", gov, env, env.breaker.functions.recover())


def test_vault_blocks_outflows_while_tripped_and_reopens_after_recovery(env: Env):
    unit = 10**18

    def user(fn: Any, what: str = "vault") -> Any:
        return env.chain.transact(fn, USER, what)

    user(env.token.functions.approve(env.vault.address, 1000 * unit))
    user(env.vault.functions.deposit(500 * unit))
    user(env.vault.functions.borrow(100 * unit))
    for _ in range(TRIP_AFTER):
        env.submit(env.bundles["high"])
    assert env.chain.call(env.vault.functions.open(), "open") is False
    reverts("BreakerTripped", user, env.vault.functions.withdraw(10 * unit))
    reverts("BreakerTripped", user, env.vault.functions.borrow(10 * unit))
    user(env.vault.functions.deposit(100 * unit))  # inflows still work
    user(env.vault.functions.repay(50 * unit))
    env.increase_time(COOLDOWN)
    for _ in range(RESET_AFTER):
        env.submit(env.bundles["low"])
    assert env.state()["tripped"] is False
    before = env.chain.call(env.token.functions.balanceOf(USER.address), "balance")
    user(env.vault.functions.withdraw(10 * unit))
    assert env.chain.call(env.token.functions.balanceOf(USER.address), "balance") == before + 10 * unit
    user(env.vault.functions.borrow(10 * unit))
    error = reverts("InsufficientDeposit", user, env.vault.functions.withdraw(600 * unit))
    assert error.args_["requested"] == 600 * unit


def test_an_armed_breaker_throttles_outflows_so_a_front_run_cannot_drain_the_vault(env: Env):
    """Security #18.5: at tripAfter - 1 high windows, a whole-deposit withdraw outbid the tripping report."""
    unit = 10**18

    def user(fn: Any, what: str = "vault") -> Any:
        return env.chain.transact(fn, USER, what)

    def throttled() -> bool:
        return bool(env.chain.call(env.vault.functions.throttled(), "throttled"))

    user(env.token.functions.approve(env.vault.address, 1000 * unit))
    user(env.vault.functions.deposit(500 * unit))
    for _ in range(TRIP_AFTER - 1):
        env.submit(env.bundles["high"])
    assert throttled() and env.chain.call(env.breaker.functions.armed(), "armed") is True
    # What a front-runner sends on reading the pending tripping report's score: the whole deposit.
    error = reverts("OutflowThrottled", user, env.vault.functions.withdraw(500 * unit))
    assert error.args_ == {"allowed": 50 * unit, "requested": 500 * unit}  # 10 % of the vault's cash
    user(env.vault.functions.withdraw(30 * unit))
    error = reverts("OutflowThrottled", user, env.vault.functions.borrow(30 * unit))  # borrows count too
    assert error.args_["allowed"] == 20 * unit
    assert env.submit(env.bundles["high"]).tripped is True
    reverts("BreakerTripped", user, env.vault.functions.withdraw(10 * unit))


def test_the_armed_state_ends_with_a_calm_window_or_when_the_run_can_no_longer_go_on(env: Env):
    unit = 10**18
    env.chain.transact(env.token.functions.approve(env.vault.address, 1000 * unit), USER, "approve")
    env.chain.transact(env.vault.functions.deposit(500 * unit), USER, "deposit")
    for _ in range(TRIP_AFTER - 1):
        env.submit(env.bundles["high"])
    assert env.chain.call(env.vault.functions.throttled(), "throttled") is True
    env.submit(env.bundles["low"])
    assert env.chain.call(env.vault.functions.throttled(), "throttled") is False
    env.chain.transact(env.vault.functions.withdraw(200 * unit), USER, "withdraw")  # unthrottled again
    for _ in range(TRIP_AFTER - 1):
        env.submit(env.bundles["high"])
    assert env.chain.call(env.vault.functions.throttled(), "throttled") is True
    env.increase_time(MAX_AGE + 2 * CADENCE)  # the next window is past reporting: the run cannot go on
    assert env.chain.call(env.vault.functions.throttled(), "throttled") is False


def test_submit_sends_only_quorum_signatures(env: Env):
    bundle = env.bundles["low"]
    all_three = env.submit(bundle, quorum=3)
    two = env.submit(bundle)
    assert two.calldata_bytes < all_three.calldata_bytes
    assert two.gas_used < all_three.gas_used


def test_bench_chain_reports_gas_and_sizes(run_cli, tiny_circuit: Path, tiny_latest_batch: BatchProveResult,
                                           scored_bundles: dict[str, ProofBundle]):
    import os

    batch = tiny_latest_batch
    os.utime(batch.bundle)  # the newest batch bundle: the one bench submits
    code, out, err = run_cli("--root", tiny_circuit, "bench", "--chain", "--bundle", scored_bundles["high"].path,
                             "--json")
    assert code == 0, err
    report = json.loads(out)
    manifest = json.loads((tiny_circuit / "circuits" / "manifest.json").read_text())
    assert set(report["deploy_gas"]) == {"Halo2Verifier", "BatchHalo2Verifier", "SentinelBreaker", "DemoToken",
                                         "GuardedVault"}
    assert report["verifier_runtime_bytes"] == manifest["verifier_runtime_bytes"]
    assert report["verifier_under_eip170"] is (report["verifier_runtime_bytes"] <= 24_576)
    assert report["submit_gas"] < report["submit_gas_first_report"]
    assert 0 < report["breaker_overhead_gas"] < 60_000  # the breaker's own checks stay cheap
    assert report["proof_bytes"] == len(scored_bundles["high"].proof) < report["submit_calldata_bytes"]
    assert report["signatures_sent"] == 2 and report["window_id"] == scored_bundles["high"].window_id
    assert report["submit_within_target"] is (report["submit_gas"] <= 450_000)
    # K windows in one submitBatch: one verification, so far less gas per window than a submit
    assert report["batch"]["bundle"] == str(batch.bundle) and report["batch"]["windows"] == 2
    assert report["batch"]["submit_batch_gas_per_window"] < 0.7 * report["submit_gas"]


# --- the CLI end to end on its own local chain ------------------------------------------------


def test_cli_chain_deploy_attest_submit(run_cli, tiny_circuit: Path, tiny_feed: Path,
                                        scored_bundles: dict[str, ProofBundle], tmp_path: Path):
    bundle = scored_bundles["low"]
    root = tmp_path / "project"
    (root / "circuits").mkdir(parents=True)
    (root / "proofs").mkdir()
    for name in ("manifest.json", "Halo2Verifier.json", "model.compiled", "batch/manifest.json",
                 "batch/Halo2Verifier.json"):
        (root / "circuits" / name).parent.mkdir(exist_ok=True)
        shutil.copy(tiny_circuit / "circuits" / name, root / "circuits" / name)
    shutil.copy(bundle.path, root / "proofs" / bundle.path.name)
    (root / "sentinel.toml").write_text("[chain]\ntrip_threshold = 0.9\nreset_threshold = 0.45\n"
                                        "trip_after = 3\nreset_after = 10\n")
    port = anvil.free_port()
    path = root / "proofs" / bundle.path.name
    try:
        code, out, err = run_cli("--root", root, "chain", "up", "--port", port,
                                 "--timestamp", bundle.window_end_unix + 60, "--json")
        assert code == 0, err
        assert json.loads(out)["port"] == port
        code, out, err = run_cli("--root", root, "chain", "up", "--port", anvil.free_port())
        assert code == 0 and "already running" in out
        code, out, err = run_cli("--root", root, "deploy", "--rpc", f"http://127.0.0.1:{port}", "--json")
        assert code == 0, err
        assert "UNSAFE demo keys" in err
        deployment = json.loads(out)
        assert set(deployment["contracts"]) == {"Halo2Verifier", "BatchHalo2Verifier", "SentinelBreaker", "DemoToken",
                                                "GuardedVault"}
        assert all(len(c["runtime_sha256"]) == 64 and c["block"] >= 1 for c in deployment["contracts"].values())
        assert deployment["policy"]["trip_threshold"] == 0.9
        code, out, err = run_cli("--root", root, "submit", path)
        assert code == 1 and "no attestation" in err and "sentinel attest" in err
        # An attester recomputes the input hash from its own rows: one changed price is refused.
        end_row = json.loads(bundle.path.read_text())["window_end_row"]
        lines = tiny_feed.read_text().splitlines()
        cells = lines[end_row - 3].split(",")
        cells[4] = repr(float(cells[4]) * 1.01)
        lines[end_row - 3] = ",".join(cells)
        forged = tmp_path / "forged.csv"
        forged.write_text("\n".join(lines) + "\n")
        code, out, err = run_cli("--root", root, "attest", path, "--data", forged)
        assert code == 1 and "input_hash" in err and "refusing to attest" in err
        assert not (root / "proofs" / f"window-{bundle.window_id}.attestation.json").exists()
        code, out, err = run_cli("--root", root, "attest", path, "--data", tiny_feed, "--json")
        assert code == 0, err
        assert json.loads(out)["checked_against"] == str(tiny_feed)
        assert "UNSAFE" in err and demo_key(2).secret not in out + err
        code, out, err = run_cli("--root", root, "submit", path, "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["window_id"] == bundle.window_id and result["tripped"] is False
        assert result["score"] == pytest.approx(bundle.score) and result["gas_used"] > 21_000
        assert result["tx_hash"].startswith("0x") and len(result["tx_hash"]) == 66
        code, out, err = run_cli("--root", root, "submit", path)
        assert code == 1
        assert err.strip().splitlines() == [err.strip()]
        assert "WindowNotNewer" in err and f"windowId={bundle.window_id}" in err
        assert run_cli("--root", root, "vault", "deposit", "100")[0] == 0
        target = bundle.window_end_unix + 7200
        code, out, err = run_cli("--root", root, "chain", "warp", "--to", target)
        assert code == 0 and out.strip() == f"chain time now {target}"
        code, out, err = run_cli("--root", root, "chain", "warp", "--to", target - 60)
        assert code == 1 and "cannot warp back in time" in err
        code, out, err = run_cli("--root", root, "chain", "status", "--json")
        assert code == 0, err
        status = json.loads(out)["deployment"]
        assert status["breaker"]["last_window_id"] == bundle.window_id
        assert status["vault"]["open"] is True and status["vault"]["deposit"] == 100
    finally:
        code, out, _ = run_cli("--root", root, "chain", "down")
    assert code == 0 and "stopped" in out
    assert not anvil.port_in_use(port)
    # The state dump brings the deployment back; without it, the stale deployments.json is named.
    try:
        assert run_cli("--root", root, "chain", "up", "--port", port)[0] == 0
        code, out, err = run_cli("--root", root, "vault", "status", "--json")
        assert code == 0, err
        assert json.loads(out)["breaker"]["last_window_id"] == bundle.window_id
        assert run_cli("--root", root, "chain", "down")[0] == 0
        (root / ".sentinel" / "chain" / "state.json").unlink()
        assert run_cli("--root", root, "chain", "up", "--port", port)[0] == 0
        code, out, err = run_cli("--root", root, "submit", path)
        assert code == 1 and "no contract at the deployed breaker address" in err and "sentinel deploy" in err
    finally:
        run_cli("--root", root, "chain", "down")


def test_cli_chain_up_refuses_a_taken_port(run_cli, tmp_path: Path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, _, err = run_cli("--root", tmp_path, "chain", "up", "--port", port)
    assert code == 1
    assert err.strip() == (f"error: port {port} is already in use (stop what listens there, or pick another "
                           "with SENTINEL_CHAIN__PORT or --port)")
    assert not (tmp_path / ".sentinel" / "chain" / "anvil.json").exists()


def test_the_verifier_measured_alone_takes_its_proof_and_refuses_a_flipped_byte(env: Env, tiny_circuit: Path):
    """The gas scripts' one measurement (sentinel.chain.bench.measure_verifier) on the tiny circuit's verifier."""
    from sentinel.chain.bench import measure_verifier
    from sentinel.chain.deploy import verifier_contract

    compiled, _ = verifier_contract(ArtifactLayout(tiny_circuit))
    bundle = env.bundles["high"]
    proof_doc = json.loads(bundle.path.read_text())["ezkl_proof"]
    w3 = env.chain.w3
    m = measure_verifier(w3, w3.eth.accounts[0], compiled, proof_doc, "tiny verifier")
    assert m.flipped_proof_rejected
    assert m.proof_bytes == len(bundle.proof) and m.public_instances == 2
    assert m.calldata_gas < m.gas < 1_000_000
    assert m.runtime_bytes == len(compiled.runtime)
