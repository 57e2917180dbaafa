"""``sentinel upgrade``: move a market's breaker to another model version through its verifier timelock.

propose
    Deploy version V's verifier (and batch verifier, if V has a batch circuit) as ``sentinel deploy`` does, each
    one's code on chain checked against V's manifest, then governance calls ``proposeVerifier`` with V's score
    scale and cadence and the keccak-256 of each verifier's runtime code (the breaker pins code, not only an
    address). The proposal is recorded in the market's entry of ``deployments.json`` (``pending_upgrade``).
execute
    After the eta (``chain.timelock_seconds`` after the proposal, by chain time), governance calls
    ``executeVerifier``; the record then names V's verifiers, circuit and version, and ``upgrades`` lists it.
cancel
    Governance withdraws the proposal (``cancelVerifier``); the record forgets it.
status
    The version in force (found by the verifier's code, never by the record) and the pending one with its eta.

Nobody else has to be told: the relay and the attester services read the breaker's verifier and switch
artifact sets at the block ``executeVerifier`` is mined in (:mod:`sentinel.in_force`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.chain.deploy import Deployment, Deployments
from sentinel.config import SentinelConfig
from sentinel.errors import ChainError, ConfigError
from sentinel.versions import Version

ZERO_HASH = b"\0" * 32


def utc(unix: int) -> str:
    """``2026-01-02T03:04:05Z``."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Proposal:
    """A verifier upgrade proposed on a breaker's timelock."""

    market: str
    version: str
    breaker: str
    verifier: str
    batch_verifier: str | None
    batch_windows: int
    eta: int  #: unix seconds (chain time) from which it can be executed
    eta_utc: str
    tx_hash: str
    block: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Executed:
    """A verifier upgrade executed: the breaker calls ``verifier`` (version ``version``) from ``block`` on."""

    market: str
    version: str
    previous_version: str
    verifier: str
    previous_verifier: str
    batch_verifier: str | None
    tx_hash: str
    block: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cancelled:
    """A pending verifier upgrade withdrawn."""

    market: str
    verifier: str
    version: str | None
    tx_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Market:
    """One market's deployment, its breaker on chain and the governance key, read once per command."""

    def __init__(self, layout: ArtifactLayout, config: SentinelConfig, market: str | None, rpc: str | None) -> None:
        from sentinel.chain.breaker import BREAKER, connect, contract
        from sentinel.chain.deploy import load_deployments
        from sentinel.chain.keys import role_key

        self.layout, self.config = layout, config
        self.deployments = load_deployments(layout)
        self.deployment = self.deployments.market(market)
        self.chain = connect(self.deployment, config, rpc)
        self.breaker = contract(self.chain, self.deployment, BREAKER)
        self.key = role_key("deployer", self.chain.chain_id)

    def read(self, name: str, *args: Any) -> Any:
        return self.chain.call(getattr(self.breaker.functions, name)(*args), f"reading {name}")

    def governed(self) -> None:
        """Refuse early, with the address to use, when the key is not the breaker's governance."""
        governance = str(self.read("governance"))
        if governance.lower() != self.key.address.lower():
            raise ChainError(f"market {self.deployment.market}: the breaker's governance is {governance}, the key "
                             f"({self.key.origin}) is {self.key.address}",
                             hint="set SENTINEL_DEPLOYER_KEY to the governance key")

    def versions(self) -> list[Version]:
        from sentinel.in_force import candidate_sets
        from sentinel.markets import markets

        own = next((m.layout for m in markets(self.config, self.layout) if m.name == self.deployment.market),
                   self.layout)
        return candidate_sets(self.config, self.layout, own)

    def version_of(self, address: str) -> Version | None:
        from sentinel.versions import for_verifier_code

        return for_verifier_code(self.versions(), self.chain.code(address))

    def now(self) -> int:
        return int(self.chain.block()["timestamp"])

    def save(self, deployment: Deployment) -> None:
        from sentinel.chain.deploy import write_deployments

        markets = dict(self.deployments.markets)
        markets[deployment.market] = deployment
        write_deployments(self.layout, Deployments(markets))


def propose(layout: ArtifactLayout, config: SentinelConfig, version: str, *, market: str | None = None,
            rpc: str | None = None, progress: Any = None) -> Proposal:
    """Deploy version ``version``'s verifier(s) and propose them on ``market``'s breaker timelock (see module doc).

    The version must be built (its circuit and verifier): a ConfigError naming ``sentinel models build``
    otherwise. Proposing replaces a pending proposal (the breaker's rule).
    """
    from sentinel.chain.deploy import (
        ZERO_ADDRESS,
        batch_verifier_contract,
        breaker_cadence,
        circuit_record,
        contract_record,
        deploy_verifiers,
        verifier_contract,
    )
    from sentinel.versions import find_version

    say = progress or (lambda step, detail: None)
    m = _Market(layout, config, market, rpc)
    chosen = find_version(m.versions(), version)
    if not chosen.built:
        raise ConfigError(f"version {chosen.id} has no circuit built ({chosen.layout.circuit_manifest} is missing)",
                          hint=f"run `sentinel models build {chosen.id}` first")
    compiled, manifest = verifier_contract(chosen.layout)
    batch = batch_verifier_contract(chosen.layout, manifest)
    cadence = breaker_cadence(manifest, chosen.layout.circuit_manifest)
    scale = int(manifest["instances"]["score_scale"])
    m.governed()
    single, many = deploy_verifiers(m.chain, m.key, compiled, manifest, batch, say)
    codehash = m.chain.codehash(single.address)
    batch_address = many.address if many is not None else ZERO_ADDRESS
    windows = int(batch[1]["windows_per_proof"]) if batch is not None else 0
    batch_codehash = m.chain.codehash(many.address) if many is not None else ZERO_HASH
    say("propose", f"proposeVerifier({single.address}, scale {scale}, cadence {cadence} s, batch "
                   f"{batch_address if many else 'none'}) on {m.breaker.address}")
    receipt = m.chain.transact(m.breaker.functions.proposeVerifier(
        single.address, scale, cadence, codehash, batch_address, windows, batch_codehash), m.key,
        f"proposing verifier {single.address} (version {chosen.id})")
    eta = int(m.read("pendingVerifierEta"))
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    pending = {
        "version": chosen.id, "eta": eta, "tx_hash": tx_hash, "block": int(receipt["blockNumber"]),
        "proposed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "score_scale": scale, "cadence": cadence,
        "verifier": contract_record(m.chain, single, compiled),
        "batch_verifier": contract_record(m.chain, many, batch[0]) if many is not None and batch else None,
        "batch_windows": windows,
        "circuit": circuit_record(manifest, batch[1] if batch is not None else None),
    }
    m.save(replace(m.deployment, pending_upgrade=pending))
    return Proposal(m.deployment.market, chosen.id, m.breaker.address, single.address,
                    many.address if many is not None else None, windows, eta, utc(eta), tx_hash,
                    int(receipt["blockNumber"]))


def execute(layout: ArtifactLayout, config: SentinelConfig, *, market: str | None = None,
            rpc: str | None = None) -> Executed:
    """Execute the pending upgrade of ``market``'s breaker once its eta has passed (by chain time); update the
    market's deployment record. A ChainError, with the time left, before the eta; one naming ``propose`` when
    nothing is pending, or when what is pending on chain is not what deployments.json recorded."""
    from sentinel.chain.deploy import ZERO_ADDRESS

    m = _Market(layout, config, market, rpc)
    name = m.deployment.market
    pending = str(m.read("pendingVerifier"))
    if int(pending, 16) == 0:
        raise ChainError(f"market {name}: no verifier upgrade is pending on the breaker {m.breaker.address}",
                         hint="propose one with `sentinel upgrade propose --version V`")
    recorded = m.deployment.pending_upgrade
    if recorded is None or recorded["verifier"]["address"].lower() != pending.lower():
        what = f"records {recorded['verifier']['address']}" if recorded else "records none"
        raise ChainError(f"market {name}: the breaker's pending verifier is {pending}, deployments.json {what}",
                         hint="propose it with `sentinel upgrade propose`, or withdraw it with `sentinel upgrade "
                              "cancel`")
    eta, now = int(m.read("pendingVerifierEta")), m.now()
    if now < eta:
        raise ChainError(f"market {name}: the timelock ends at {utc(eta)}; {_duration(eta - now)} of chain time left "
                         f"(chain time {utc(now)})")
    m.governed()
    previous = str(m.read("verifier"))
    receipt = m.chain.transact(m.breaker.functions.executeVerifier(), m.key,
                               f"executing the upgrade to verifier {pending}")
    tx_hash, block = "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["blockNumber"])
    contracts = dict(m.deployment.contracts)
    contracts["Halo2Verifier"] = recorded["verifier"]
    batch = recorded.get("batch_verifier")
    if batch:
        contracts["BatchHalo2Verifier"] = batch
    else:
        contracts.pop("BatchHalo2Verifier", None)
    done = {"version": recorded["version"], "from": m.deployment.model_version, "verifier": pending,
            "previous_verifier": previous, "block": block, "tx_hash": tx_hash}
    m.save(replace(m.deployment, contracts=contracts, circuit=recorded["circuit"],
                   score_scale=int(recorded["score_scale"]), batch_verifier=batch["address"] if batch else ZERO_ADDRESS,
                   batch_windows=int(recorded["batch_windows"]), model_version=str(recorded["version"]),
                   pending_upgrade=None, upgrades=[*m.deployment.upgrades, done]))
    return Executed(name, str(recorded["version"]), m.deployment.model_version, pending, previous,
                    batch["address"] if batch else None, tx_hash, block)


def cancel(layout: ArtifactLayout, config: SentinelConfig, *, market: str | None = None,
           rpc: str | None = None) -> Cancelled:
    """Withdraw the pending upgrade of ``market``'s breaker (``cancelVerifier``) and forget it in the record."""
    m = _Market(layout, config, market, rpc)
    pending = str(m.read("pendingVerifier"))
    if int(pending, 16) == 0:
        raise ChainError(f"market {m.deployment.market}: no verifier upgrade is pending on the breaker "
                         f"{m.breaker.address}")
    m.governed()
    receipt = m.chain.transact(m.breaker.functions.cancelVerifier(), m.key, f"cancelling the upgrade to {pending}")
    recorded = m.deployment.pending_upgrade
    m.save(replace(m.deployment, pending_upgrade=None))
    return Cancelled(m.deployment.market, pending, recorded["version"] if recorded else None,
                     "0x" + bytes(receipt["transactionHash"]).hex())


def status(layout: ArtifactLayout, config: SentinelConfig, *, market: str | None = None,
           rpc: str | None = None) -> dict[str, Any]:
    """The version in force on ``market``'s breaker (by its verifier's code), the pending one and its eta."""
    m = _Market(layout, config, market, rpc)
    verifier = str(m.read("verifier"))
    code = m.chain.code(verifier)
    in_force = m.version_of(verifier)
    now = m.now()
    doc: dict[str, Any] = {
        "market": m.deployment.market, "breaker": m.breaker.address, "chain_time": now, "chain_time_utc": utc(now),
        "verifier": verifier, "verifier_code_sha256": hashlib.sha256(code).hexdigest(),
        "version": in_force.id if in_force else None, "recorded_version": m.deployment.model_version or None,
        "timelock_seconds": int(m.read("timelockDelay")), "pending": None,
        "upgrades": list(m.deployment.upgrades),
    }
    pending = str(m.read("pendingVerifier"))
    if int(pending, 16):
        eta = int(m.read("pendingVerifierEta"))
        candidate = m.version_of(pending)
        doc["pending"] = {"verifier": pending, "version": candidate.id if candidate else None, "eta": eta,
                          "eta_utc": utc(eta), "seconds_left": max(0, eta - now), "executable": now >= eta,
                          "recorded": bool(m.deployment.pending_upgrade and m.deployment.pending_upgrade["verifier"]
                                           ["address"].lower() == pending.lower())}
    return doc


def _duration(seconds: int) -> str:
    """``1 h 02 min 05 s`` style."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"
