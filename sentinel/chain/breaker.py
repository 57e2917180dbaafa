"""Operating a deployed breaker: attest a window, submit it, read state, use the guarded vault.

Each step is a library function returning a small result; the CLI, the demo,
the bench and the tests call them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, atomic_write_text
from sentinel.chain import eip712
from sentinel.chain.client import Chain
from sentinel.chain.deploy import Deployment, load_deployment, load_deployments
from sentinel.chain.encoding import (
    AttestationMessage,
    BatchBundle,
    ProofBundle,
    SignedAttestation,
    from_wad,
    message_for,
    read_attestation,
    read_bundle,
    submit_args,
    submit_batch_args,
)
from sentinel.chain.keys import Key, attester_keys, role_key
from sentinel.config import SentinelConfig
from sentinel.errors import ArtifactFieldError, ChainError, SigningKeyError

BREAKER = "SentinelBreaker"
VAULT = "GuardedVault"
TOKEN = "DemoToken"  # noqa: S105 - a contract name, not a credential


def connect(deployment: Deployment, config: SentinelConfig, rpc: str | None = None, *,
            fallbacks: Sequence[str] = ()) -> Chain:
    """A Chain on the deployment's endpoint (or ``rpc``, then ``fallbacks`` in order of preference, checked and
    failed over as the relay's settings say), refusing one with another chain id."""
    chain = Chain(rpc or deployment.rpc_url, [c["abi"] for c in deployment.contracts.values()],
                  gas_headroom=config.chain.gas_headroom, receipt_timeout=config.chain.receipt_timeout_seconds,
                  fallbacks=fallbacks, recheck_seconds=config.relay.rpc_recheck_seconds,
                  max_lag_blocks=config.relay.rpc_max_lag_blocks)
    if chain.chain_id != deployment.chain_id:
        raise ChainError(f"{chain.rpc_url} is chain {chain.chain_id}, but the deployment is on chain "
                         f"{deployment.chain_id}", hint="pass the right --rpc or redeploy")
    if not chain.code(deployment.address(BREAKER)):
        raise ChainError(f"{chain.rpc_url}: no contract at the deployed breaker address {deployment.address(BREAKER)} "
                         "(the chain was reset?)", hint="run `sentinel deploy` again")
    return chain


def contract(chain: Chain, deployment: Deployment, name: str) -> Any:
    """The web3 contract ``name`` of a deployment."""
    return chain.contract(deployment.address(name), deployment.contracts[name]["abi"])


# --- attest -----------------------------------------------------------------------------


def sign_attestation(bundle: ProofBundle, keys: list[Key], chain_id: int, breaker: str) -> SignedAttestation:
    """Every key signs the bundle's (windowId, windowEnd, inputHash) for this breaker and chain."""
    return sign_message(message_for(bundle), keys, chain_id, breaker)


def sign_message(message: AttestationMessage, keys: list[Key], chain_id: int, breaker: str) -> SignedAttestation:
    """Every key signs ``message`` as EIP-712 data for ``breaker`` on ``chain_id``."""
    signatures = []
    for key in keys:
        signer, signature = eip712.sign(key.secret, chain_id, breaker, message)
        if eip712.recover(signature, chain_id, breaker, message) != signer:
            raise SigningKeyError(f"signature by {signer} does not recover to its signer")
        signatures.append((signer, signature))
    return SignedAttestation(message, chain_id, breaker, tuple(signatures))


@dataclass(frozen=True)
class AttestResult:
    """Where the attestation went and who signed."""

    path: Path
    window_id: int
    signers: list[str]
    demo_keys: bool
    quorum: int
    checked_against: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def attest_bundle(layout: ArtifactLayout, config: SentinelConfig, bundle_path: Path,
                  data: Path | None = None, market: str | None = None) -> AttestResult:
    """Sign a bundle's window with the attester keys for the deployed breaker; write the attestation file.

    With ``data`` (the attesters' own copy of the feed), the window's end, id and
    input hash are recomputed from its rows first, and a mismatch is refused.
    """
    bundle = read_bundle(bundle_path)
    if data is not None:
        from sentinel.zk.witness_check import check_against_rows

        check_against_rows(layout, config, data, bundle=bundle.path, window_id=bundle.window_id,
                           window_end_unix=bundle.window_end_unix, input_hash=bundle.input_hash)
    deployment = load_deployment(layout, market)
    keys = attester_keys(deployment.chain_id, config.chain.attester_keyfile)
    strangers = [k.address for k in keys if k.address not in deployment.attesters]
    if strangers:
        raise SigningKeyError(f"{', '.join(strangers)} is not a registered attester of the breaker at "
                              f"{deployment.address(BREAKER)}")
    if len(keys) < deployment.quorum:
        raise SigningKeyError(f"{len(keys)} attester key(s) available, the breaker needs {deployment.quorum}")
    signed = sign_attestation(bundle, keys, deployment.chain_id, deployment.address(BREAKER))
    path = layout.attestation(bundle.window_id)
    atomic_write_text(path, json.dumps(signed.to_dict(), indent=1, sort_keys=True) + "\n")
    return AttestResult(path, bundle.window_id, [a for a, _ in signed.signatures],
                        any(k.demo for k in keys), deployment.quorum, str(data) if data else None)


# --- submit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    """One accepted report."""

    tx_hash: str
    gas_used: int
    block: int
    window_id: int
    score: float
    score_wad: int
    tripped: bool
    events: list[str]
    calldata_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def report_events(breaker: Any, receipt: Any) -> list[tuple[str, dict[str, Any]]]:
    """The breaker's events in a receipt, in log order: (name, args)."""
    from web3.logs import DISCARD

    found = []
    for name in ("Report", "Tripped", "Recovered"):
        for event in getattr(breaker.events, name)().process_receipt(receipt, errors=DISCARD):
            found.append((event["logIndex"], name, dict(event["args"])))
    return [(name, args) for _, name, args in sorted(found, key=lambda item: item[0])]


def submit_signed(chain: Chain, breaker: Any, bundle: ProofBundle, attestation: SignedAttestation,
                  key: Key, quorum: int | None = None) -> SubmitResult:
    """Send ``submit`` for a bundle and its attestation; reverts raise ContractRevert with the error's name.

    ``quorum`` limits the signatures sent to that many (default: the breaker's current quorum).
    """
    if quorum is None:
        quorum = int(chain.call(breaker.functions.params(), "reading params")[6])
    function = breaker.functions.submit(*submit_args(bundle, attestation, quorum))
    receipt = chain.transact(function, key, f"submit of window {bundle.window_id}")
    events = report_events(breaker, receipt)
    reports = [args for name, args in events if name == "Report"]
    if len(reports) != 1:
        raise ChainError(f"submit of window {bundle.window_id}: expected one Report event, got {len(reports)}")
    report = reports[0]
    tx = chain.w3.eth.get_transaction(receipt["transactionHash"])
    return SubmitResult(
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), gas_used=int(receipt["gasUsed"]),
        block=int(receipt["blockNumber"]), window_id=int(report["windowId"]), score=from_wad(report["score"]),
        score_wad=int(report["score"]), tripped=bool(report["tripped"]), events=[name for name, _ in events],
        calldata_bytes=len(bytes(tx["input"])),
    )


def submit_batch_signed(chain: Chain, breaker: Any, bundle: BatchBundle, attestations: list[SignedAttestation],
                        key: Key, quorum: int | None = None) -> list[SubmitResult]:
    """Send ``submitBatch`` for a batch bundle and one attestation per window; one result per window, in order
    (all with the one transaction's hash, gas and calldata; each with its own Report and the Tripped or
    Recovered before it). Reverts raise ContractRevert with the error's name; ``quorum`` as in submit_signed."""
    if quorum is None:
        quorum = int(chain.call(breaker.functions.params(), "reading params")[6])
    ids = f"{attestations[0].message.window_id}..{attestations[-1].message.window_id}" if attestations else "none"
    function = breaker.functions.submitBatch(*submit_batch_args(bundle, attestations, quorum))
    receipt = chain.transact(function, key, f"submitBatch of windows {ids}")
    events = report_events(breaker, receipt)
    reports = [name for name, _ in events].count("Report")
    if reports != bundle.size:
        raise ChainError(f"submitBatch of windows {ids}: expected {bundle.size} Report events, got {reports}")
    tx = chain.w3.eth.get_transaction(receipt["transactionHash"])
    results: list[SubmitResult] = []
    pending: list[str] = []
    for name, args in events:
        pending.append(name)
        if name != "Report":
            continue
        results.append(SubmitResult(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), gas_used=int(receipt["gasUsed"]),
            block=int(receipt["blockNumber"]), window_id=int(args["windowId"]), score=from_wad(args["score"]),
            score_wad=int(args["score"]), tripped=bool(args["tripped"]), events=pending,
            calldata_bytes=len(bytes(tx["input"]))))
        pending = []
    return results


def submit_bundle(layout: ArtifactLayout, config: SentinelConfig, bundle_path: Path,
                  attestation_path: Path | None = None, rpc: str | None = None,
                  market: str | None = None) -> SubmitResult:
    """Submit a proven, attested window to the deployed breaker."""
    bundle = read_bundle(bundle_path)
    path = attestation_path or layout.attestation(bundle.window_id)
    if not Path(path).exists():
        raise ChainError(f"{path}: no attestation for window {bundle.window_id}",
                         hint=f"run `sentinel attest {bundle_path}`")
    attestation = read_attestation(path)
    if attestation.message != message_for(bundle):
        raise ArtifactFieldError(Path(path), "message", f"attests another window or input hash than {bundle.path}")
    deployment = load_deployment(layout, market)
    same_breaker = attestation.breaker.lower() == deployment.address(BREAKER).lower()
    if not same_breaker or attestation.chain_id != deployment.chain_id:
        raise ArtifactFieldError(Path(path), "domain", "signed for another breaker or chain than the deployment",
                                 hint=f"run `sentinel attest {bundle_path}` again")
    chain = connect(deployment, config, rpc)
    key = role_key("submitter", chain.chain_id)
    return submit_signed(chain, contract(chain, deployment, BREAKER), bundle, attestation, key)


# --- state ------------------------------------------------------------------------------


def breaker_state(chain: Chain, breaker: Any) -> dict[str, Any]:
    """Everything an operator looks at: tripped, streaks, last window, policy, verifier, attesters."""
    last, last_end, tripped_at, high, low, tripped, manual = chain.call(breaker.functions.state(), "reading state")
    params = chain.call(breaker.functions.params(), "reading params")
    trip_t, reset_t, trip_after, reset_after, cooldown, max_age, quorum = params
    return {
        "tripped": bool(tripped), "manual_trip": bool(manual), "tripped_at": int(tripped_at) or None,
        "armed": bool(chain.call(breaker.functions.armed(), "armed")),
        "last_window_id": int(last), "last_window_end": int(last_end) or None,
        "high_streak": int(high), "low_streak": int(low),
        "trip_threshold": from_wad(trip_t), "reset_threshold": from_wad(reset_t),
        "trip_after": int(trip_after), "reset_after": int(reset_after),
        "cooldown_seconds": int(cooldown), "max_age_seconds": int(max_age), "quorum": int(quorum),
        "attesters": list(chain.call(breaker.functions.attesters(), "attesters")),
        "verifier": chain.call(breaker.functions.verifier(), "verifier"),
        "score_scale": int(chain.call(breaker.functions.scoreScale(), "scoreScale")),
        "cadence_seconds": int(chain.call(breaker.functions.cadence(), "cadence")),
        "pending_verifier": chain.call(breaker.functions.pendingVerifier(), "pendingVerifier"),
        "pending_verifier_eta": int(chain.call(breaker.functions.pendingVerifierEta(), "pendingVerifierEta")) or None,
        "governance": chain.call(breaker.functions.governance(), "governance"),
        "guardian": chain.call(breaker.functions.guardian(), "guardian"),
    }


def vault_state(chain: Chain, vault: Any, token: Any, account: str) -> dict[str, Any]:
    """The vault's openness and ``account``'s position (token units, 18 decimals)."""
    return {
        "open": bool(chain.call(vault.functions.open(), "open")),
        "throttled": bool(chain.call(vault.functions.throttled(), "throttled")),
        "total_deposits": chain.call(vault.functions.totalDeposits(), "totalDeposits") / 1e18,
        "total_debt": chain.call(vault.functions.totalDebt(), "totalDebt") / 1e18,
        "account": account,
        "deposit": chain.call(vault.functions.deposits(account), "deposits") / 1e18,
        "debt": chain.call(vault.functions.debt(account), "debt") / 1e18,
        "wallet": chain.call(token.functions.balanceOf(account), "balanceOf") / 1e18,
    }


def status(layout: ArtifactLayout, config: SentinelConfig, rpc: str | None = None,
           market: str | None = None) -> dict[str, Any]:
    """Breaker and vault state of one market's deployment (``market``, else the only or the default one), with
    the chain's head."""
    return market_status(load_deployment(layout, market), config, rpc)


def statuses(layout: ArtifactLayout, config: SentinelConfig, rpc: str | None = None) -> dict[str, dict[str, Any]]:
    """:func:`market_status` of every deployed market, by name, in deployment order."""
    return {name: market_status(d, config, rpc) for name, d in load_deployments(layout).markets.items()}


def market_status(deployment: Deployment, config: SentinelConfig, rpc: str | None = None) -> dict[str, Any]:
    """Breaker and vault state of a market's deployment, with the chain's head."""
    chain = connect(deployment, config, rpc)
    head = chain.block()
    user = role_key("vault_user", chain.chain_id).address
    return {
        "market": deployment.market, "asset": deployment.asset,
        "chain_id": chain.chain_id, "block": int(head["number"]), "block_timestamp": int(head["timestamp"]),
        "breaker_address": deployment.address(BREAKER),
        "breaker": breaker_state(chain, contract(chain, deployment, BREAKER)),
        "vault_address": deployment.address(VAULT),
        "vault": vault_state(chain, contract(chain, deployment, VAULT), contract(chain, deployment, TOKEN), user),
    }


# --- vault ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultResult:
    """One vault transaction."""

    action: str
    amount: float
    tx_hash: str
    gas_used: int
    account: str
    market: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def vault_action(layout: ArtifactLayout, config: SentinelConfig, action: str, amount: float,
                 rpc: str | None = None, market: str | None = None) -> VaultResult:
    """``deposit``, ``withdraw``, ``borrow`` or ``repay`` ``amount`` tokens as the vault user, in ``market``'s
    vault (else the only or the default market's)."""
    from decimal import Decimal

    if action not in {"deposit", "withdraw", "borrow", "repay"}:
        raise ChainError(f"unknown vault action '{action}'")
    if amount <= 0:
        raise ChainError(f"vault {action}: amount must be > 0, got {amount}")
    deployment = load_deployment(layout, market)
    chain = connect(deployment, config, rpc)
    key = role_key("vault_user", chain.chain_id)
    vault, token = contract(chain, deployment, VAULT), contract(chain, deployment, TOKEN)
    units = int(Decimal(repr(amount)) * 10**18)
    if action in {"deposit", "repay"}:
        chain.transact(token.functions.approve(vault.address, units), key, f"vault {action}: approve")
    receipt = chain.transact(getattr(vault.functions, action)(units), key, f"vault {action} of {amount:g}")
    return VaultResult(action, amount, "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["gasUsed"]),
                       key.address, deployment.market)
