"""Pure chain logic: EIP-712 digests, score felts, revert decoding, bundles, keys, chain config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sentinel.chain import eip712
from sentinel.chain.encoding import (
    WAD,
    AttestationMessage,
    SignedAttestation,
    messages_for_batch,
    read_attestation,
    read_batch_bundle,
    read_bundle,
    score_wad,
    submit_args,
    submit_batch_args,
    to_wad,
)
from sentinel.chain.keys import ANVIL_CHAIN_ID, attester_keys, demo_key, role_key
from sentinel.chain.revert import decode_revert, error_table
from sentinel.config import load_config
from sentinel.errors import ArtifactFieldError, CircuitError, ConfigError, SigningKeyError
from sentinel.zk.instances import BN254_R, felt_from_hex, felt_to_hex

BREAKER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


MESSAGE = AttestationMessage(28929486, 1735769160, 0x109EA103E74BAA0FB6ACE10ABE391EDB06B9F5CF990535810A4D28605983A2A5)


# --- EIP-712 ------------------------------------------------------------------------------


def test_digest_equals_eth_accounts_typed_data_hash():
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    for chain_id, breaker, message in [(31337, BREAKER, MESSAGE), (1, BREAKER.lower(), AttestationMessage(1, 2, 3))]:
        expected = _hash_eip191_message(encode_typed_data(full_message=eip712.typed_data(chain_id, breaker, message)))
        assert eip712.digest(chain_id, breaker, message) == bytes(expected)


def test_digest_binds_chain_breaker_and_every_field():
    base = eip712.digest(31337, BREAKER, MESSAGE)
    assert eip712.digest(1, BREAKER, MESSAGE) != base
    assert eip712.digest(31337, "0x" + "11" * 20, MESSAGE) != base
    for change in ({"window_id": MESSAGE.window_id + 1}, {"window_end": MESSAGE.window_end + 1},
                   {"input_hash": MESSAGE.input_hash ^ 1}):
        other = AttestationMessage(**{**MESSAGE.__dict__, **change})
        assert eip712.digest(31337, BREAKER, other) != base


def test_sign_and_recover_round_trip():
    key = demo_key(2)
    signer, signature = eip712.sign(key.secret, 31337, BREAKER, MESSAGE)
    assert signer == key.address and len(signature) == 65 and signature[64] in (27, 28)
    assert eip712.recover(signature, 31337, BREAKER, MESSAGE) == key.address
    assert eip712.recover(signature, 1, BREAKER, MESSAGE) != key.address


def test_submit_args_sort_signers_and_cut_to_quorum(tmp_path: Path):
    keys = [demo_key(i) for i in (4, 2, 3)]
    sigs = tuple(eip712.sign(k.secret, 31337, BREAKER, MESSAGE) for k in keys)
    attestation = SignedAttestation(MESSAGE, 31337, BREAKER, sigs)
    ordered = attestation.ordered_signatures()
    signers = [eip712.recover(s, 31337, BREAKER, MESSAGE) for s in ordered]
    assert [int(a, 16) for a in signers] == sorted(int(a, 16) for a in signers)
    bundle = read_bundle(_bundle(tmp_path))
    proof, _, message, signatures = submit_args(bundle, attestation, quorum=2)
    assert signatures == ordered[:2] and message == MESSAGE.as_tuple() and proof == bytes(range(64))
    path = tmp_path / "a.json"
    path.write_text(json.dumps(attestation.to_dict()))
    assert read_attestation(path) == attestation


# --- felts and scores ----------------------------------------------------------------------


@pytest.mark.parametrize(("felt", "scale", "expected"), [
    (0, 10, 0),
    (1024, 10, WAD),
    (512, 10, WAD // 2),
    (BN254_R - 1024, 10, -WAD),  # a felt above p/2 is negative
    (BN254_R - 1, 12, -(WAD // 4096)),
    (3, 0, 3 * WAD),
    (1, 18, 5**18),  # 1e18 / 2^18, exact
    (BN254_R // 2, 10, (1 << 128) * WAD >> 10),  # clamped far outside [0, 1]
])
def test_score_wad(felt, scale, expected):
    assert score_wad(felt, scale) == expected


def test_score_wad_refuses_non_field_elements():
    with pytest.raises(CircuitError, match="not a field element"):
        score_wad(BN254_R, 10)


def test_to_wad_is_exact_on_decimal_thresholds():
    assert to_wad(0.98) == 980_000_000_000_000_000
    assert to_wad(0.5) == WAD // 2
    assert to_wad(0.981964696856106) == 981_964_696_856_106_000


def test_little_endian_felts():
    assert felt_from_hex(felt_to_hex(1234567)) == 1234567
    assert felt_from_hex("01" + "00" * 31) == felt_from_hex("0x01" + "00" * 31) == 1
    assert felt_to_hex(1) == "01" + "00" * 31
    assert felt_from_hex(felt_to_hex(BN254_R - 1)) == BN254_R - 1
    with pytest.raises(CircuitError, match="32 bytes"):
        felt_from_hex("0x1234")
    with pytest.raises(CircuitError, match="modulus"):
        felt_from_hex(BN254_R.to_bytes(32, "little").hex())
    with pytest.raises(CircuitError, match="not a field element"):
        felt_to_hex(BN254_R)


# --- revert decoding -----------------------------------------------------------------------

ABI: list[dict[str, Any]] = [
    {"type": "error", "name": "WindowNotNewer",
     "inputs": [{"name": "windowId", "type": "uint64"}, {"name": "lastWindowId", "type": "uint64"}]},
    {"type": "error", "name": "NotAttester", "inputs": [{"name": "signer", "type": "address"}]},
    {"type": "error", "name": "InvalidProof", "inputs": []},
    {"type": "function", "name": "submit", "inputs": []},
]


def _encoded(signature: str, types: list[str], values: list[Any]) -> bytes:
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak

    return keccak(signature.encode())[:4] + encode(types, values)


def test_custom_errors_decode_with_names_and_arguments():
    table = error_table([ABI])
    data = _encoded("WindowNotNewer(uint64,uint64)", ["uint64", "uint64"], [5, 7])
    decoded = decode_revert("0x" + data.hex(), table)
    assert decoded.name == "WindowNotNewer" and decoded.args == {"windowId": 5, "lastWindowId": 7}
    assert str(decoded) == "WindowNotNewer(windowId=5, lastWindowId=7)"
    signer = demo_key(7).address
    assert decode_revert(_encoded("NotAttester(address)", ["address"], [signer]), table).args == {"signer": signer}
    assert decode_revert(_encoded("InvalidProof()", [], []), table).name == "InvalidProof"


def test_builtin_unknown_and_empty_reverts():
    table = error_table([ABI])
    assert decode_revert(_encoded("Error(string)", ["string"], ["no"]), table).args == {"message": "no"}
    assert decode_revert(_encoded("Panic(uint256)", ["uint256"], [0x11]), table).args == {"code": 0x11}
    assert decode_revert(b"", table).name == "EmptyRevert"
    assert decode_revert("0xdeadbeef", table).name == "UnknownRevert"
    truncated = _encoded("WindowNotNewer(uint64,uint64)", ["uint64", "uint64"], [5, 7])[:10]
    assert decode_revert(truncated, table).name == "WindowNotNewer"  # named even when its arguments are cut


# --- bundles -------------------------------------------------------------------------------


def _bundle(tmp_path: Path, **changes) -> Path:
    doc: dict[str, Any] = {
        "window_id": MESSAGE.window_id, "window_end_unix": MESSAGE.window_end, "score": 0.5, "score_scale": 10,
        "input_hash": f"0x{MESSAGE.input_hash:064x}",
        "model": {"vk_sha256": "ab" * 32, "verifier_runtime_sha256": "cd" * 32},
        "ezkl_proof": {"hex_proof": "0x" + bytes(range(64)).hex(),
                       "instances": [[felt_to_hex(MESSAGE.input_hash), felt_to_hex(512)]]},
    }
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        if value is None:
            del node[last]
        else:
            node[last] = value
    path = tmp_path / "window.json"
    path.write_text(json.dumps(doc))
    return path


def test_bundle_reads_instances_little_endian(tmp_path: Path):
    bundle = read_bundle(_bundle(tmp_path))
    assert bundle.instances == (MESSAGE.input_hash, 512)
    assert score_wad(bundle.score_felt, bundle.score_scale) == WAD // 2


@pytest.mark.parametrize(("changes", "field"), [
    ({"window_id": None}, "window_id"),
    ({"window_id": "12"}, "window_id"),
    ({"ezkl_proof__hex_proof": "0xzz"}, "ezkl_proof.hex_proof"),
    ({"ezkl_proof__instances": [["00" * 32]]}, "ezkl_proof.instances"),
    ({"ezkl_proof__instances": [[(BN254_R).to_bytes(32, "little").hex(), felt_to_hex(512)]]}, "ezkl_proof.instances"),
    ({"input_hash": "0x" + "00" * 32}, "input_hash"),
    ({"score_scale": 40}, "score_scale"),
    ({"model": {}}, "model.vk_sha256"),
])
def test_bad_bundle_names_the_field(tmp_path: Path, changes, field):
    path = _bundle(tmp_path, **changes)
    with pytest.raises(ArtifactFieldError) as info:
        read_bundle(path)
    assert info.value.field == field and str(path) in str(info.value)


def test_missing_bundle_names_the_file(tmp_path: Path):
    with pytest.raises(ArtifactFieldError, match="no such proof bundle"):
        read_bundle(tmp_path / "nope.json")


def _batch(tmp_path: Path, size: int = 2, **changes: Any) -> Path:
    hashes = [MESSAGE.input_hash + i for i in range(size)]
    doc: dict[str, Any] = {
        "kind": "batch", "windows_per_proof": size, "score_scale": 10,
        "windows": [{"window_id": MESSAGE.window_id + i, "window_end_unix": MESSAGE.window_end + 60 * i,
                     "input_hash": f"0x{h:064x}", "score": 0.5} for i, h in enumerate(hashes)],
        "model": {"vk_sha256": "ab" * 32, "verifier_runtime_sha256": "cd" * 32},
        "ezkl_proof": {"hex_proof": "0x" + bytes(range(64)).hex(),
                       "instances": [[felt_to_hex(h) for h in hashes] + [felt_to_hex(512 + i) for i in range(size)]]},
        **changes,
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(doc))
    return path


def test_batch_bundle_windows_messages_and_submit_args(tmp_path: Path):
    bundle = read_batch_bundle(_batch(tmp_path, size=3))
    assert bundle.size == 3 and bundle.score_felts == (512, 513, 514)
    messages = messages_for_batch(bundle)
    assert messages[2] == AttestationMessage(MESSAGE.window_id + 2, MESSAGE.window_end + 120, MESSAGE.input_hash + 2)
    keys = [demo_key(i) for i in (4, 2, 3)]
    signed = [SignedAttestation(m, 31337, BREAKER, tuple(eip712.sign(k.secret, 31337, BREAKER, m) for k in keys))
              for m in messages]
    proof, instances, attestations, signatures = submit_batch_args(bundle, signed, quorum=2)
    assert proof == bytes(range(64)) and instances == list(bundle.instances)
    assert attestations == [m.as_tuple() for m in messages]
    assert signatures == [s.ordered_signatures()[:2] for s in signed]
    with pytest.raises(ArtifactFieldError, match="3 windows but 2 attestations"):
        submit_batch_args(bundle, signed[:2])


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": None}, "kind"),
    ({"windows_per_proof": 3}, "windows"),
    ({"ezkl_proof": {"hex_proof": "0x00", "instances": [[felt_to_hex(1)] * 3]}}, "ezkl_proof.instances"),
    ({"windows": [{"window_id": 1, "window_end_unix": 60, "input_hash": "0x01", "score": 0.5}] * 2},
     "windows[0].input_hash"),
    ({"windows": [{}, {}]}, "windows[0].input_hash"),
    ({"windows": [1, 2]}, "windows[0]"),
])
def test_bad_batch_bundle_names_the_field(tmp_path: Path, changes, field):
    with pytest.raises(ArtifactFieldError) as info:
        read_batch_bundle(_batch(tmp_path, **changes))
    assert info.value.field == field


# --- keys ----------------------------------------------------------------------------------


def test_demo_keys_are_anvils_dev_accounts_and_never_printed():
    assert demo_key(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert demo_key(2).address == "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert demo_key(0).secret[2:] not in repr(demo_key(0)) + str(demo_key(0))


def test_demo_keys_refused_on_other_chains():
    with pytest.raises(SigningKeyError, match="refused on chain 1"):
        role_key("submitter", 1, env={})
    with pytest.raises(SigningKeyError):
        attester_keys(1, env={})
    assert role_key("submitter", ANVIL_CHAIN_ID, env={}).demo


def test_keys_from_env_and_keyfile(tmp_path: Path):
    secrets = [demo_key(i).secret for i in (6, 7)]
    env = {"SENTINEL_ATTESTER_KEYS": ",".join(secrets), "SENTINEL_SUBMITTER_KEY": secrets[0]}
    assert [k.address for k in attester_keys(1, env=env)] == [demo_key(6).address, demo_key(7).address]
    assert role_key("submitter", 1, env=env).address == demo_key(6).address
    keyfile = tmp_path / "attesters.keys"
    keyfile.write_text("# attesters\n" + "\n".join(secrets) + "\n")
    keyfile.chmod(0o644)
    with pytest.raises(SigningKeyError, match="readable by others"):
        attester_keys(1, str(keyfile), env={})
    keyfile.chmod(0o600)
    assert len(attester_keys(1, str(keyfile), env={})) == 2


def test_bad_key_message_hides_the_key():
    secret = "0x" + "zz" * 32
    with pytest.raises(SigningKeyError) as info:
        role_key("submitter", 1, env={"SENTINEL_SUBMITTER_KEY": secret})
    assert "SENTINEL_SUBMITTER_KEY" in str(info.value) and secret not in str(info.value)


# --- config --------------------------------------------------------------------------------


def test_chain_config_defaults_env_and_bounds(tmp_path: Path):
    config = load_config(tmp_path, env={})
    assert config.chain.port == 8545 and config.chain.trip_threshold == 0.0  # 0 = the model card's
    config = load_config(tmp_path, env={"SENTINEL_CHAIN__QUORUM": "3", "SENTINEL_CHAIN__PORT": "9545"})
    assert (config.chain.quorum, config.chain.port) == (3, 9545)
    with pytest.raises(ConfigError, match=r"chain.trip_threshold"):
        load_config(tmp_path, {"chain.trip_threshold": 1.5}, env={})
    with pytest.raises(ConfigError, match=r"chain.rpc_url"):
        load_config(tmp_path, {"chain.rpc_url": "localhost:8545"}, env={})


def test_policy_comes_from_the_model_card_where_unset():
    from sentinel.chain.deploy import resolve_policy

    card = {"trip_policy": {"trip_threshold": 0.98, "reset_threshold": 0.49, "trip_after": 3, "reset_after": 10}}
    config = load_config(Path("/nonexistent"), {"chain.trip_after": 4}, env={})
    policy = resolve_policy(config.chain, card)
    assert (policy.trip_threshold, policy.reset_threshold, policy.trip_after, policy.reset_after) == (0.98, 0.49, 4, 10)
    assert policy.params()[:4] == (to_wad(0.98), to_wad(0.49), 4, 10)
    assert "trip_after" not in policy.source
    with pytest.raises(ConfigError, match=r"chain.trip_threshold is unset"):
        resolve_policy(config.chain, None)


# --- CLI without a chain -----------------------------------------------------------------------


def test_submit_without_a_bundle_is_one_line(run_cli, tmp_path: Path):
    code, out, err = run_cli("--root", tmp_path, "submit", tmp_path / "missing.json")
    assert code == 1 and out == ""
    assert err.strip() == f"error: {tmp_path / 'missing.json'}: field '(file)': no such proof bundle"


def test_attest_without_a_deployment_says_deploy(run_cli, tmp_path: Path):
    code, _, err = run_cli("--root", tmp_path, "attest", _bundle(tmp_path), "--no-check")
    assert code == 1 and "nothing deployed yet" in err and "sentinel deploy" in err


def test_chain_status_without_a_chain(run_cli, tmp_path: Path):
    code, out, _ = run_cli("--root", tmp_path, "chain", "status")
    assert code == 0 and "not running" in out and "not deployed" in out


# --- attest and submit checks that need no chain -------------------------------------------------


def _deployment(root: Path, attesters: Sequence[str], quorum: int = 2) -> None:
    from sentinel.chain.deploy import ContractRecord, Deployment

    contracts = {name: ContractRecord(address=addr, tx_hash="0x" + "00" * 32, block=1, gas_used=0,
                                      creation_sha256="", runtime_sha256="", runtime_bytes=0, abi=[])
                 for name, addr in
                 [("SentinelBreaker", BREAKER), ("GuardedVault", "0x" + "22" * 20), ("DemoToken", "0x" + "33" * 20),
                  ("Halo2Verifier", "0x" + "44" * 20)]}
    deployment = Deployment(chain_id=31337, rpc_url="http://127.0.0.1:1", block=1, deployed_at="", deployer="",
                            governance="", guardian="", attesters=list(attesters), quorum=quorum, timelock_seconds=3600,
                            score_scale=10, policy={}, circuit={}, contracts=contracts, compiler="")
    (root / ".sentinel").mkdir(exist_ok=True)
    (root / ".sentinel" / "deployments.json").write_text(json.dumps(deployment.to_dict()))


def test_attest_signs_offline_for_the_deployed_breaker(run_cli, tmp_path: Path):
    _deployment(tmp_path, [demo_key(i).address for i in (2, 3, 4)])
    code, out, err = run_cli("--root", tmp_path, "attest", _bundle(tmp_path), "--no-check", "--json")
    assert code == 0, err
    assert "UNSAFE demo keys" in err
    result = json.loads(out)
    attestation = read_attestation(Path(result["path"]))
    assert attestation.message == MESSAGE and attestation.breaker == BREAKER and attestation.chain_id == 31337
    recovered = {eip712.recover(sig, 31337, BREAKER, MESSAGE) for _, sig in attestation.signatures}
    assert recovered == {demo_key(i).address for i in (2, 3, 4)} == set(result["signers"])


def test_attest_refuses_keys_the_breaker_does_not_know(run_cli, tmp_path: Path):
    _deployment(tmp_path, [demo_key(i).address for i in (2, 3)] + [demo_key(9).address])
    code, _, err = run_cli("--root", tmp_path, "attest", _bundle(tmp_path), "--no-check")
    assert code == 1 and f"{demo_key(4).address} is not a registered attester" in err
    assert not list((tmp_path).glob("*.attestation.json"))


def test_submit_refuses_an_attestation_of_another_window_or_breaker(run_cli, tmp_path: Path):
    _deployment(tmp_path, [demo_key(i).address for i in (2, 3, 4)])
    bundle = _bundle(tmp_path)
    keys = [demo_key(2), demo_key(3)]
    for field, chain_id, breaker, message in [
        ("message", 31337, BREAKER, AttestationMessage(MESSAGE.window_id + 1, MESSAGE.window_end, MESSAGE.input_hash)),
        ("domain", 31337, "0x" + "55" * 20, MESSAGE),
        ("domain", 1, BREAKER, MESSAGE),
    ]:
        sigs = tuple(eip712.sign(k.secret, chain_id, breaker, message) for k in keys)
        path = tmp_path / f"{field}-{chain_id}.json"
        path.write_text(json.dumps(SignedAttestation(message, chain_id, breaker, sigs).to_dict()))
        code, out, err = run_cli("--root", tmp_path, "submit", bundle, "--attestation", path)
        assert code == 1 and out == ""
        assert f"{path}: field '{field}'" in err, err
