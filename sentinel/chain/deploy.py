"""``sentinel deploy``: compile the contracts; per market, deploy verifier, breaker, token and vault; record them.

Each market (``[markets.<name>]``, else the one ``default`` market: see :mod:`sentinel.markets`) gets its own
contracts from its own artifact set. Its verifier is the circuit build's ``circuits/Halo2Verifier.json`` (its
runtime code must hash to the manifest's ``verifier_runtime_sha256``, checked again on chain after deployment).
When the build made the batch circuit too (the single manifest's ``batch`` entry), its verifier
(``circuits/batch/``) is deployed and checked the same way and handed to the breaker with its windows per proof;
otherwise the breaker gets none (batches disabled). The breaker's policy comes from the ``[chain]`` config, each
unset field from the market's model card trip policy. The market's DemoToken and GuardedVault follow: the vault
consults its own market's breaker. ``deployments.json`` (version 2: one entry per market) is written once every
market has been deployed and checked; a version-1 file (one deployment) reads as the ``default`` market.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from sentinel.artifacts import ArtifactLayout, atomic_write_text, read_json_artifact
from sentinel.chain.client import Chain, Deployed
from sentinel.chain.encoding import MAX_SCORE_SCALE, read_json, to_wad
from sentinel.chain.keys import Key, attester_keys, role_key
from sentinel.config import DEFAULT_ASSET, DEFAULT_MARKET, ChainConfig, SentinelConfig
from sentinel.errors import ArtifactFieldError, ChainError, CircuitError, ConfigError
from sentinel.markets import Market, markets, pick
from sentinel.toolchain.solc import CompiledContract, compile_files
from sentinel.versions import version_id
from sentinel.zk.layout import InstanceLayout
from sentinel.zk.manifest import load_batch_manifest, load_manifest

CONTRACT_FILES = ("SentinelBreaker.sol", "GuardedVault.sol", "DemoToken.sol")
#: solc optimizer runs for Sentinel's own contracts (favours cheap calls over small code).
OPTIMIZER_RUNS = 1000
DEPLOYMENTS_VERSION = 2
#: Demo token minted to the vault user at deployment (18 decimals).
DEMO_MINT = 1_000_000 * 10**18
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: Windows per batch proof the breaker accepts (SentinelBreaker.MIN/MAX_BATCH_WINDOWS).
BATCH_WINDOWS_RANGE = (2, 16)


def compile_contracts(layout: ArtifactLayout) -> dict[str, CompiledContract]:
    """SentinelBreaker, GuardedVault and DemoToken compiled with the pinned npm solc."""
    return compile_files([layout.contracts_dir / name for name in CONTRACT_FILES], optimizer_runs=OPTIMIZER_RUNS)


def _compiled_verifier(layout: ArtifactLayout, manifest: dict[str, Any]) -> CompiledContract:
    """The compiled Halo2 verifier of an artifact set, its runtime code checked against its manifest."""
    artifact = read_json_artifact(layout.verifier_artifact, "verifier", "sentinel circuit build", CircuitError)
    runtime = bytes.fromhex(artifact["deployedBytecode"].removeprefix("0x"))
    if hashlib.sha256(runtime).hexdigest() != manifest["verifier_runtime_sha256"]:
        raise ChainError(f"{layout.verifier_artifact}: runtime code differs from the manifest's",
                         hint="rebuild with `sentinel circuit build`")
    creation = bytes.fromhex(artifact["bytecode"].removeprefix("0x"))
    return CompiledContract("Halo2Verifier", artifact["abi"], creation, runtime, artifact.get("compiler", "?"))


def verifier_contract(layout: ArtifactLayout) -> tuple[CompiledContract, dict[str, Any]]:
    """The circuit's compiled Halo2 verifier and its manifest, cross-checked."""
    manifest = load_manifest(layout)
    compiled = _compiled_verifier(layout, manifest)
    inst = manifest["instances"]
    if not InstanceLayout.from_manifest(inst).is_breakers():
        raise ChainError(f"{layout.circuit_manifest}: instance layout {inst.get('description')} is not the "
                         "breaker's [input_hash, score]")
    if not 0 <= int(inst["score_scale"]) <= MAX_SCORE_SCALE:
        raise ChainError(f"{layout.circuit_manifest}: score scale {inst['score_scale']} is above {MAX_SCORE_SCALE}")
    return compiled, manifest


def batch_verifier_contract(layout: ArtifactLayout, manifest: dict[str, Any],
                            ) -> tuple[CompiledContract, dict[str, Any]] | None:
    """The batch circuit's compiled verifier and manifest when the single set's ``manifest`` names one, checked to
    be the same model's (score scale, cadence) with K windows per proof and 2K instances; else None."""
    entry = manifest.get("batch")
    if not entry:
        return None
    batch = layout.batch()
    batch_manifest = load_batch_manifest(layout)
    where = batch.circuit_manifest
    k = int(batch_manifest.get("windows_per_proof", 0))
    low, high = BATCH_WINDOWS_RANGE
    if k != int(entry["windows"]) or not low <= k <= high:
        raise ChainError(f"{where}: windows_per_proof {k}, but {layout.circuit_manifest} says {entry['windows']} "
                         f"(the breaker takes {low}..{high})", hint="rebuild with `sentinel circuit build`")
    inst, single = batch_manifest["instances"], manifest["instances"]
    if int(inst["total"]) != 2 * k or int(inst["score_scale"]) != int(single["score_scale"]):
        raise ChainError(f"{where}: {inst['total']} instances at score scale {inst['score_scale']}; the breaker "
                         f"takes {2 * k} (hashes, then scores) at the single circuit's scale {single['score_scale']}")
    if float(batch_manifest["cadence_seconds"]) != float(manifest["cadence_seconds"]):
        raise ChainError(f"{where}: cadence {batch_manifest['cadence_seconds']} s is not the single circuit's "
                         f"{manifest['cadence_seconds']} s")
    return _compiled_verifier(batch, batch_manifest), batch_manifest


@dataclass(frozen=True)
class BreakerPolicy:
    """The breaker's state-machine parameters (thresholds as probabilities)."""

    trip_threshold: float
    reset_threshold: float
    trip_after: int
    reset_after: int
    cooldown_seconds: int
    max_age_seconds: int
    quorum: int
    source: str  #: which fields came from the model card

    def params(self) -> tuple[int, int, int, int, int, int, int]:
        """The Solidity ``Params`` tuple (WAD thresholds)."""
        return (to_wad(self.trip_threshold), to_wad(self.reset_threshold), self.trip_after, self.reset_after,
                self.cooldown_seconds, self.max_age_seconds, self.quorum)


def resolve_policy(chain: ChainConfig, card: dict[str, Any] | None) -> BreakerPolicy:
    """``[chain]`` settings, each one left at 0 taken from the model card's trip policy."""
    values: dict[str, Any] = {}
    from_card = []
    for name in ("trip_threshold", "reset_threshold", "trip_after", "reset_after"):
        value = getattr(chain, name)
        if not value:
            if card is None or name not in card.get("trip_policy", {}):
                raise ConfigError(f"chain.{name} is unset and there is no model card trip policy to take it from")
            value = card["trip_policy"][name]
            from_card.append(name)
        values[name] = value
    return BreakerPolicy(float(values["trip_threshold"]), float(values["reset_threshold"]),
                         int(values["trip_after"]), int(values["reset_after"]), chain.cooldown_seconds,
                         chain.max_age_seconds, chain.quorum,
                         "model card: " + ", ".join(from_card) if from_card else "config")


def rpc_url(config: ChainConfig, override: str | None = None) -> str:
    """The endpoint: ``--rpc``, else ``chain.rpc_url``, else the local Anvil's port."""
    return override or config.rpc_url or f"http://127.0.0.1:{config.port}"


@dataclass(frozen=True)
class Roles:
    """Keys and addresses of everyone the deployment names."""

    deployer: Key
    guardian: str
    attesters: list[str]
    vault_user: str


def resolve_roles(config: ChainConfig, chain_id: int) -> Roles:
    """Deployer key, guardian, attester addresses and vault user from env/config, else demo accounts."""
    from web3 import Web3

    deployer = role_key("deployer", chain_id)
    guardian = config.guardian or role_key("guardian", chain_id).address
    if config.attesters:
        attesters = [a.strip() for a in config.attesters.split(",") if a.strip()]
    else:
        attesters = [k.address for k in attester_keys(chain_id, config.attester_keyfile)]
    try:
        attesters = [Web3.to_checksum_address(a) for a in attesters]
        guardian = Web3.to_checksum_address(guardian)
    except ValueError as exc:
        raise ConfigError(f"chain.attesters / chain.guardian: not an address: {exc}") from None
    if len(set(attesters)) != len(attesters):
        raise ConfigError("chain.attesters: an address appears twice")
    return Roles(deployer, guardian, attesters, role_key("vault_user", chain_id).address)


class ContractRecord(TypedDict):
    """One deployed contract as ``deployments.json`` records it."""

    address: str
    tx_hash: str
    block: int
    gas_used: int
    creation_sha256: str
    runtime_sha256: str
    runtime_bytes: int
    abi: list[dict[str, Any]]


@dataclass(frozen=True)
class Deployment:
    """One market's deployment, as ``deployments.json`` records it (with the settings every market shares)."""

    chain_id: int
    rpc_url: str
    block: int
    deployed_at: str
    deployer: str
    governance: str
    guardian: str
    attesters: list[str]
    quorum: int
    timelock_seconds: int
    score_scale: int
    policy: dict[str, Any]
    circuit: dict[str, Any]
    contracts: dict[str, ContractRecord]
    compiler: str
    #: the breaker's batch verifier (contracts["BatchHalo2Verifier"]) and windows per batch proof; zero and 0 when
    #: the circuit build made no batch circuit
    batch_verifier: str = ZERO_ADDRESS
    batch_windows: int = 0
    market: str = DEFAULT_MARKET
    asset: str = DEFAULT_ASSET  #: label of the asset the market's vault moves (its DemoToken is s<asset>)
    artifacts: str = ""  #: the market's artifact set, relative to the project root ('' = the project's own)
    #: the model version in force (v-...; '' in a record written before versions); not ``version``: a version-1
    #: file's top-level ``version`` is the file format's
    model_version: str = ""
    #: a verifier upgrade proposed on the breaker's timelock (`sentinel upgrade propose`), until executed or cancelled
    pending_upgrade: dict[str, Any] | None = None
    #: the verifier upgrades executed, oldest first (version, verifier, block, tx)
    upgrades: list[dict[str, Any]] = field(default_factory=list)

    def address(self, name: str) -> str:
        return self.contracts[name]["address"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deployments:
    """What ``deployments.json`` records: every market's deployment, in configuration order."""

    markets: dict[str, Deployment]

    def names(self) -> list[str]:
        return list(self.markets)

    def market(self, name: str | None = None) -> Deployment:
        """The market ``name``; without one, the only market or the one called ``default`` (else a ConfigError
        naming the markets)."""
        return self.markets[pick(self.names(), name, "deployments.json")]

    def to_dict(self) -> dict[str, Any]:
        return {"version": DEPLOYMENTS_VERSION, "markets": {name: d.to_dict() for name, d in self.markets.items()}}


def write_deployments(layout: ArtifactLayout, deployments: Deployments) -> None:
    """``deployments.json``, atomically (keys unsorted: the markets stay in configuration order)."""
    atomic_write_text(layout.deployments, json.dumps(deployments.to_dict(), indent=1) + "\n")


def deploy_project(layout: ArtifactLayout, config: SentinelConfig, rpc: str | None = None,
                   progress: Any = None) -> Deployments:
    """Deploy every market (see :func:`deploy_markets`), then write deployments.json."""
    deployments = deploy_markets(layout, config, rpc, progress)
    write_deployments(layout, deployments)
    return deployments


def deploy_all(layout: ArtifactLayout, config: SentinelConfig, rpc: str | None = None,
               progress: Any = None) -> Deployment:
    """A one-market project's :func:`deploy_project`: its market's deployment (several markets: ConfigError)."""
    _one_market(config)
    return deploy_project(layout, config, rpc, progress).market()


def deploy_contracts(layout: ArtifactLayout, config: SentinelConfig, rpc: str | None = None,
                     progress: Any = None) -> Deployment:
    """A one-market project's :func:`deploy_markets`: its market's deployment, nothing written."""
    _one_market(config)
    return deploy_markets(layout, config, rpc, progress).market()


def _one_market(config: SentinelConfig) -> None:
    if len(config.markets) != 1:
        raise ConfigError(f"{len(config.markets)} markets configured ({', '.join(m.name for m in config.markets)}); "
                          "this step deploys one", hint="deploy them all with `sentinel deploy` (deploy_project)")


def deploy_markets(layout: ArtifactLayout, config: SentinelConfig, rpc: str | None = None,
                   progress: Any = None) -> Deployments:
    """Compile once, then per market deploy its verifier(s), breaker, token and vault, each verifier's code
    checked on chain; writes nothing. Every market's artifacts are checked before the first transaction."""
    say = progress or (lambda step, detail: None)
    url = rpc_url(config.chain, rpc)
    every = markets(config, layout)
    plans = [(market, _plan(market, config)) for market in every]
    say("compile", f"contracts in {layout.contracts_dir} with npm solc")
    compiled = compile_contracts(layout)
    chain = Chain(url, [c.abi for c in compiled.values()], gas_headroom=config.chain.gas_headroom,
                  receipt_timeout=config.chain.receipt_timeout_seconds)
    roles = resolve_roles(config.chain, chain.chain_id)
    found: dict[str, Deployment] = {}
    for (market, plan), settings in zip(plans, config.markets, strict=True):
        tell = say if len(every) == 1 else (lambda step, detail, name=market.name: say(step, f"{name}: {detail}"))
        found[market.name] = _deploy_market(chain, compiled, roles, config, market, plan, settings.artifacts, tell)
    return Deployments(found)


@dataclass(frozen=True)
class _Plan:
    """What one market deploys, read and checked from its artifact set before any transaction."""

    verifier: CompiledContract
    manifest: dict[str, Any]
    batch: tuple[CompiledContract, dict[str, Any]] | None
    policy: BreakerPolicy
    cadence: int
    version: str  #: the model's version id


def _plan(market: Market, config: SentinelConfig) -> _Plan:
    from sentinel.model.pipeline import load_card

    verifier, manifest = verifier_contract(market.layout)
    batch = batch_verifier_contract(market.layout, manifest)
    policy = resolve_policy(config.chain, load_card(market.layout) if not all(
        getattr(config.chain, f) for f in ("trip_threshold", "reset_threshold", "trip_after", "reset_after")) else None)
    # the version the circuit was built from (its manifest pins the ONNX's sha256: the model file itself need not
    # be where the circuit is deployed from)
    onnx = str(manifest["artifacts"]["onnx"]["sha256"])
    return _Plan(verifier, manifest, batch, policy, breaker_cadence(manifest, market.layout.circuit_manifest),
                 version_id(onnx))


def _deploy_market(chain: Chain, compiled: dict[str, CompiledContract], roles: Roles, config: SentinelConfig,
                   market: Market, plan: _Plan, artifacts: str, say: Any) -> Deployment:
    """One market's verifier (and batch verifier), breaker, token and vault; the token minted to the vault user."""
    manifest, policy, batch = plan.manifest, plan.policy, plan.batch
    scale = int(manifest["instances"]["score_scale"])
    results: dict[str, Deployed] = {}
    single, many = deploy_verifiers(chain, roles.deployer, plan.verifier, manifest, batch, say)
    results["Halo2Verifier"] = single
    batch_address, batch_windows = ZERO_ADDRESS, 0
    if many is not None and batch is not None:
        results["BatchHalo2Verifier"] = many
        batch_address, batch_windows = many.address, int(batch[1]["windows_per_proof"])
    say("deploy", f"SentinelBreaker: trip >= {policy.trip_threshold:.4f} x{policy.trip_after}, "
                  f"reset <= {policy.reset_threshold:.4f} x{policy.reset_after}, quorum {policy.quorum} of "
                  f"{len(roles.attesters)}")
    results["SentinelBreaker"] = chain.deploy(compiled["SentinelBreaker"], [
        results["Halo2Verifier"].address, scale, plan.cadence, policy.params(), roles.attesters,
        roles.deployer.address, roles.guardian, config.chain.timelock_seconds, batch_address, batch_windows],
        roles.deployer)
    results["DemoToken"] = chain.deploy(compiled["DemoToken"], [f"Sentinel Demo {market.asset}", f"s{market.asset}"],
                                        roles.deployer)
    results["GuardedVault"] = chain.deploy(compiled["GuardedVault"], [
        results["DemoToken"].address, results["SentinelBreaker"].address], roles.deployer)
    token = chain.contract(results["DemoToken"].address, compiled["DemoToken"].abi)
    chain.transact(token.functions.mint(roles.vault_user, DEMO_MINT), roles.deployer, "minting demo tokens")

    verifiers = {"Halo2Verifier": plan.verifier, **({"BatchHalo2Verifier": batch[0]} if batch is not None else {})}
    contracts = {name: contract_record(chain, d, verifiers[name] if name in verifiers else compiled[name])
                 for name, d in results.items()}
    return Deployment(
        chain_id=chain.chain_id, rpc_url=chain.rpc_url, block=results["Halo2Verifier"].block,
        deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), deployer=roles.deployer.address,
        governance=roles.deployer.address, guardian=roles.guardian, attesters=roles.attesters,
        quorum=policy.quorum, timelock_seconds=config.chain.timelock_seconds, score_scale=scale,
        policy={**asdict(policy), "params_wad": list(policy.params())},
        circuit=circuit_record(manifest, None if batch is None else batch[1]),
        contracts=contracts, compiler=compiled["SentinelBreaker"].compiler,
        batch_verifier=batch_address, batch_windows=batch_windows,
        market=market.name, asset=market.asset, artifacts=artifacts, model_version=plan.version,
    )


def contract_record(chain: Chain, deployed: Deployed, source: CompiledContract) -> ContractRecord:
    """How ``deployments.json`` records a contract just deployed from ``source`` (its code read back from chain)."""
    code = chain.code(deployed.address)
    return {"address": deployed.address, "tx_hash": deployed.tx_hash, "block": deployed.block,
            "gas_used": deployed.gas_used, "creation_sha256": hashlib.sha256(source.bytecode).hexdigest(),
            "runtime_sha256": hashlib.sha256(code).hexdigest(), "runtime_bytes": len(code), "abi": source.abi}


def circuit_record(manifest: dict[str, Any], batch_manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The ``circuit`` entry of a deployment: the vk and verifier code of the model's circuit (and batch circuit)."""
    return {"vk_sha256": manifest["artifacts"]["vk"]["sha256"],
            "verifier_runtime_sha256": manifest["verifier_runtime_sha256"],
            "srs_test_only": manifest["srs"]["warning"] is not None,
            "batch": None if batch_manifest is None else {
                "windows": int(batch_manifest["windows_per_proof"]),
                "vk_sha256": batch_manifest["artifacts"]["vk"]["sha256"],
                "verifier_runtime_sha256": batch_manifest["verifier_runtime_sha256"]}}


def deploy_verifiers(chain: Chain, key: Key, verifier: CompiledContract, manifest: dict[str, Any],
                     batch: tuple[CompiledContract, dict[str, Any]] | None, say: Any
                     ) -> tuple[Deployed, Deployed | None]:
    """Deploy a model's verifier (and batch verifier), each one's code on chain checked against its manifest's
    ``verifier_runtime_sha256`` (a ChainError otherwise)."""
    say("deploy", f"Halo2Verifier ({len(verifier.runtime)} bytes of runtime code) on chain {chain.chain_id}")
    single = chain.deploy(verifier, [], key)
    if hashlib.sha256(chain.code(single.address)).hexdigest() != manifest["verifier_runtime_sha256"]:
        raise ChainError("deployed verifier code differs from the circuit manifest's verifier_runtime_sha256")
    if batch is None:
        return single, None
    batch_verifier, batch_manifest = batch
    say("deploy", f"batch Halo2Verifier ({int(batch_manifest['windows_per_proof'])} windows per proof, "
                  f"{len(batch_verifier.runtime)} bytes)")
    many = chain.deploy(batch_verifier, [], key)
    if hashlib.sha256(chain.code(many.address)).hexdigest() != batch_manifest["verifier_runtime_sha256"]:
        raise ChainError("deployed batch verifier code differs from the batch manifest's verifier_runtime_sha256")
    return single, many


def breaker_cadence(manifest: dict[str, Any], where: Path) -> int:
    """The model's cadence in whole seconds, as the breaker derives window ids from window ends with it."""
    cadence = float(manifest["cadence_seconds"])
    if not cadence.is_integer() or not 1 <= cadence <= 86_400:
        raise ChainError(f"{where}: cadence_seconds {cadence:g} must be a whole number of seconds in 1..86400 "
                         "(the breaker computes window ids as window end // cadence)")
    return int(cadence)


def load_deployments(layout: ArtifactLayout) -> Deployments:
    """``deployments.json``, every market (a version-1 file is the one ``default`` market), or an error saying to
    deploy first."""
    path = layout.deployments
    if not path.exists():
        raise ChainError(f"{path}: nothing deployed yet", hint="run `sentinel deploy`")
    doc = read_json(path, "deployments file")
    version = doc.pop("version", 1)
    try:
        if version == 1:
            return Deployments({DEFAULT_MARKET: Deployment(**doc)})
        if version != DEPLOYMENTS_VERSION:
            raise ArtifactFieldError(path, "version", f"{version} is not 1 or {DEPLOYMENTS_VERSION}",
                                     hint="run `sentinel deploy` again")
        entries = doc.get("markets")
        if not isinstance(entries, dict) or not entries:
            raise ArtifactFieldError(path, "markets", "not a table of market deployments")
        return Deployments({name: Deployment(**{**entry, "market": name}) for name, entry in entries.items()})
    except TypeError as exc:
        raise ArtifactFieldError(path, "(file)", f"not a deployments file of this version: {exc}") from None


def load_deployment(layout: ArtifactLayout, market: str | None = None) -> Deployment:
    """One market's deployment from ``deployments.json``: ``market``, else the only or the ``default`` one."""
    return load_deployments(layout).market(market)
