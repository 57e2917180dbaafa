"""Typed configuration, resolved in one place.

Precedence, lowest first: the defaults below < ``sentinel.toml`` in the project
root (or the file named by ``SENTINEL_CONFIG``) < ``SENTINEL_<SECTION>__<FIELD>``
environment variables < explicit overrides (CLI flags). Every field has a
one-line doc in its ``metadata`` so ``sentinel config`` can explain itself,
and :func:`resolve_config` records which layer set each value.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.errors import ConfigError

CONFIG_FILE_NAME = "sentinel.toml"
#: Most windows one batch proof may carry (the breaker stores K in a uint8; proving time grows with K).
MAX_BATCH_WINDOWS = 16
ENV_PREFIX = "SENTINEL_"
#: The one market a project without ``[markets.<name>]`` tables guards (data.feed, its own artifacts, relay.attesters).
DEFAULT_MARKET = "default"
#: The implicit default market's asset label (its demo token is sUSD, as before markets existed).
DEFAULT_ASSET = "USD"
MARKET_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def _f(default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret})


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: all of it that may be shown (API keys ride in the path, the query
    or the user part of private endpoints' URLs)."""
    from urllib.parse import urlsplit

    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<unparsable url>"
    if not parts.scheme or not host:
        return "<unparsable url>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


@dataclass(frozen=True)
class DataConfig:
    """How market-depth files are read and validated."""

    cadence_seconds: float = _f(
        0.0, "expected seconds between rows; 0 infers the median spacing of each file"
    )
    max_gap_factor: float = _f(
        1.5, "a gap longer than this many cadences is an error (scrapers jitter a little)"
    )
    blr_rel_tolerance: float = _f(
        5e-3, "allowed relative gap between blr and buy_volume / sell_volume (rounding)"
    )
    blr_abs_tolerance: float = _f(
        1e-4, "allowed absolute gap between blr and buy_volume / sell_volume (rounding)"
    )
    feed: str = _f(
        "data/sample_market_depth.csv",
        "market-depth feed that prove, score, attest and the relay read when no --data is given "
        "(a CSV; the relay also takes a directory of them); relative to the project root",
    )


@dataclass(frozen=True)
class ModelConfig:
    """The risk model, its training data, its evaluation and its trip policy."""

    window: int = _f(50, "rows per window (the model's input length)")
    pooling: str = _f(
        "40:40,8:4,2:2",
        "ROWS:POOL segments, oldest first, averaging POOL rows into one step (coarse past, fine present); "
        "the first step is the baseline the others are measured from, the LSTM runs over the rest",
    )
    units: int = _f(8, "LSTM units")
    activations: str = _f(
        "hard", "hard: hard_sigmoid and hard_tanh, piecewise linear (no lookup table: faster proofs), trained from "
        "the smooth model; smooth: sigmoid and tanh (the circuit has one tanh lookup table); "
        "docs/circuit-sweep.md 11-12"
    )
    finetune_learning_rate: float = _f(
        3e-4, "hard activations: the model starts from the smooth one trained with these settings and is "
        "fine-tuned at this Adam rate (0 = train the hard model from scratch at learning_rate)"
    )
    feature_clip: float = _f(4.0, "clip features to +-this (0 = off): bounds gate pre-activations, so lookup tables")
    preactivation_bound: float = _f(
        15.0, "bound on every sigmoid input, enforced on the weights (0 = off; the candidate gate's tanh gets half): "
        "the circuit computes sigmoid(x) = (1 + tanh(x/2)) / 2, so its one lookup table spans half of it; "
        "with hard activations it bounds the smooth model they start from"
    )
    output_bound: float = _f(
        0.0,
        "tighter bound on the output layer's pre-activation (sum|w| + |b|; 0 = preactivation_bound): "
        "it multiplies the hidden state's fixed-point rounding into the score",
    )
    horizon: int = _f(30, "a window is positive if a crash begins within this many rows after it")
    early_weight: float = _f(
        0.0, "training: positive windows from a crash's onset through the first half of its fall weigh 1 + this "
        "in the loss (on top of the class weights; 0 = off): detection there leaves the most lead"
    )
    negative_weight: float = _f(
        3.0, "training: windows holding a hard negative's event rows (dip, spike, drift, withdrawal, move) weigh "
        "1 + this in the loss (on top of the class weights; 0 = off): the false trips are there"
    )
    holdout_family: str = _f("", "scenario family kept out of training, evaluated alone ('' for none)")
    scenarios: str = _f(
        "ranges", "scenario space of the default training data and `data generate`: classic (fixed ranges per "
        "family) or ranges (continuous parameter ranges, more hard negatives, an unseen region never drawn for "
        "training); docs/data.md"
    )
    vary_market: bool = _f(
        default=True, doc="ranges scenarios only (the classic space has one market): draw each training episode's "
        "healthy market (BLR level and noise, depth memory, return volatility) from ranges around the profile "
        "(sentinel.data.synthetic.MARKET_RANGES), so a market that sits lower or moves more is not taken for a "
        "crash; docs/data.md"
    )
    data_episodes: int = _f(1000, "episodes in the default training scenarios")
    data_seed: int = _f(7, "seed of the default training scenarios")
    seed: int = _f(7, "seed of the split, weight initialisation and shuffling")
    val_fraction: float = _f(0.15, "share of episodes (per family) for validation")
    test_fraction: float = _f(0.15, "share of episodes (per family) for test")
    epochs: int = _f(60, "maximum training epochs (early stopping on validation loss)")
    batch_size: int = _f(256, "training batch size")
    learning_rate: float = _f(3e-3, "Adam learning rate (halved on plateau)")
    patience: int = _f(6, "epochs without validation improvement before stopping")
    trip_after: int = _f(3, "trip after this many consecutive scores >= the trip threshold")
    reset_after: int = _f(10, "recover after this many consecutive scores <= the reset threshold")
    reset_ratio: float = _f(0.5, "reset threshold = this x the trip threshold (hysteresis)")
    false_trip_budget: float = _f(1.0, "allowed false trips per 10,000 healthy rows when tuning thresholds")

    @property
    def varied_markets(self) -> bool:
        """Whether the training scenarios vary the healthy market (``vary_market`` applies to ``ranges`` only)."""
        return self.vary_market and self.scenarios == "ranges"


@dataclass(frozen=True)
class CircuitConfig:
    """The EZKL circuit: visibility, calibration, fidelity and the verifier build."""

    input_visibility: str = _f("hashed", "window rows enter as a Poseidon hash (public instance)")
    param_visibility: str = _f("fixed", "weights are baked into the verifying key (the verifier pins the model)")
    output_visibility: str = _f("public", "the risk score is a public instance")
    check_mode: str = _f("safe", "EZKL range checks on (EZKL's Python default is unsafe)")
    num_inner_cols: int = _f(1, "EZKL inner columns (rows vs columns: measured, see docs/circuit-sweep.md)")
    decomp_base: int = _f(
        16000, "EZKL range-check base (its table needs decomp_base rows: 16384 forces logrows >= 15); "
        "base**legs / 2**scale bounds every raw input value: 16000^2 at scale 10 = 250,000"
    )
    decomp_legs: int = _f(
        2, "EZKL range-check legs: each leg adds rows to every rescale and ReLU (the hard model fits 2^14 with 2, "
        "not 3); 4096^3 takes inputs up to 67.1 million (docs/circuit-sweep.md 11)"
    )
    scales: str = _f("10", "comma-separated scales calibration may pick from ('' = EZKL's default range); "
                           "measured in docs/circuit-sweep.md")
    max_logrows: int = _f(0, "cap on logrows in calibration (0 = no cap)")
    lookup_columns: int = _f(
        1, "max columns for the tanh lookup table: 2 lets a table over 16k entries fit 2^14 rows when the "
        "circuit's rows do; each column grows the verifier and the prover's work (docs/circuit-sweep.md 10)"
    )
    calibration_windows: int = _f(16, "test windows used to calibrate (crash and healthy)")
    fidelity_windows: int = _f(64, "test windows whose circuit score is compared with onnxruntime")
    fidelity_tolerance: float = _f(0.005, "max |circuit score - float score| or the build fails")
    optimizer_runs: int = _f(1, "solc optimizer runs for the verifier (1 = smallest code)")
    cadence_seconds: float = _f(60.0, "row cadence that turns a window's end time into its window id")
    batch_windows: int = _f(
        4, "windows per batch proof: `circuit build` also builds a circuit of this many copies of the model under "
        "circuits/batch (one proof, one verifyProof for K consecutive windows while the breaker is tripped); "
        "0 = no batch circuit, else 2..16")


@dataclass(frozen=True)
class ChainConfig:
    """The local chain, the contracts' parameters and who holds which role."""

    port: int = _f(8545, "port of the local Anvil started by `sentinel chain up`")
    rpc_url: str = _f("", "JSON-RPC endpoint ('' = the local Anvil at http://127.0.0.1:<port>)")
    chain_id: int = _f(31337, "chain id of the local Anvil (demo keys are refused on any other chain)")
    startup_seconds: float = _f(30.0, "deadline for the local Anvil to answer JSON-RPC after start")
    trip_threshold: float = _f(0.0, "trip when a score >= this (0 = the model card's trip policy)")
    reset_threshold: float = _f(0.0, "a score <= this counts towards recovery (0 = the model card's)")
    trip_after: int = _f(0, "consecutive high scores that trip the breaker (0 = the model card's)")
    reset_after: int = _f(0, "consecutive low scores that recover it, after the cooldown (0 = the model card's)")
    cooldown_seconds: int = _f(3600, "minimum seconds between a trip and a recovery by scores (60 s .. 7 days)")
    max_age_seconds: int = _f(1800, "a window ending longer ago than this is stale (60 s .. 1 day)")
    quorum: int = _f(2, "attester signatures required on each window (k of n)")
    attester_keyfile: str = _f(
        "", "attester private keys, one a line ('' = env SENTINEL_ATTESTER_KEYS, else demo keys)")
    attesters: str = _f("", "comma-separated attester addresses to register ('' = those of the attester keys)")
    guardian: str = _f("", "guardian address, may trip by hand ('' = Anvil dev account 1, demo only)")
    timelock_seconds: int = _f(86400, "delay from proposing to executing a verifier (model) change (1 h .. 30 days)")
    gas_headroom: float = _f(1.2, "gas limit = estimate x this")
    receipt_timeout_seconds: float = _f(120.0, "how long to wait for a transaction receipt")


@dataclass(frozen=True)
class AuditConfig:
    """The auditor: how it reads the chain and how hard it checks."""

    log_chunk_blocks: int = _f(5000, "blocks per eth_getLogs request when scanning the breaker's events")
    workers: int = _f(0, "processes verifying proofs in parallel (0 = one per CPU; 1 = serial)")
    parallel_min_reports: int = _f(32, "below this many proofs verify serially (a process pool costs ~1 s to start)")
    score_tolerance: float = _f(0.0, "max |proven - float score| with --data (0 = circuit.fidelity_tolerance)")


@dataclass(frozen=True)
class RelayConfig:
    """The relay daemon: queue, signer lane, fees, confirmations and observability (its feed is data.feed)."""

    rpc_url: str = _f("", "JSON-RPC endpoint ('' = the deployment's)")
    rpc_urls: tuple[str, ...] = _f(
        (), "JSON-RPC endpoints in order of preference (your node, then providers); when set they replace rpc_url "
        "(a --rpc flag still means that one endpoint): each request goes to the first healthy one and, on a "
        "connection error, timeout or HTTP 5xx, to the next (a TOML array, or comma-separated in the environment); "
        "shown and logged as scheme://host only", secret=True)
    rpc_recheck_seconds: float = _f(15.0, "with rpc_urls: an endpoint marked down is skipped this long before it is "
                                          "probed again (chain id and head); the healthy ones are probed as often")
    rpc_max_lag_blocks: int = _f(5, "with rpc_urls: an endpoint whose head is this many blocks behind the best head "
                                    "of the latest probe is skipped as lagging while another one is usable")
    private_rpc_url: str = _f(
        "", "private submission endpoint (a Flashbots Protect-style RPC, a builder, an L2 sequencer's): every raw "
        "transaction goes there by eth_sendRawTransaction, everything else to rpc_url ('' = off); shown and logged "
        "as scheme://host only", secret=True)
    private_fallback_public: bool = _f(
        default=False, doc="while the private endpoint is unreachable, send through rpc_url's public mempool "
        "instead of waiting (reports can then be front-run)")
    db: str = _f("", "SQLite queue path ('' = .sentinel/relay/queue.sqlite)")
    interval_seconds: float = _f(2.0, "pause between passes when there is nothing to do")
    confirmations: int = _f(2, "blocks (the inclusion block counts as 1) before a report counts as confirmed")
    stuck_seconds: float = _f(30.0, "a transaction not mined after this long gets its fees bumped")
    executor: str = _f("local", "where proofs run: 'local' (a pool of warm prover processes on this machine) or 'ray' "
                                "(Ray actors on the cluster at ray_address; every node reads the artifacts at the same "
                                "path: a shared volume or rsync)")
    provers: int = _f(0, "local executor: warm prover processes (0 = auto: as many as the cores hold at "
                         "prover_threads each)")
    prover_threads: int = _f(0, "EZKL proving threads per proof, local worker or Ray actor (0 = auto: the measured "
                                "best on the default circuit, see docs/scaling.md)")
    ray_address: str = _f("", "ray executor: the cluster's head, host:port (e.g. 127.0.0.1:6379)")
    ray_actors: int = _f(0, "ray executor: prover actors (0 = one per prover_threads CPUs in the cluster)")
    prove_timeout_seconds: float = _f(600.0, "a proof not done after this long stops the prover process (a fresh one "
                                             "takes the next window)")
    fee_bump_percent: float = _f(12.5, "bump on both fee fields when replacing a stuck transaction (>= 12.5)")
    base_fee_multiplier: float = _f(2.0, "maxFeePerGas = this x the node's next base fee + the priority fee, and "
                                         "never above this x the latest block's base fee + the priority fee (a "
                                         "next base fee beyond that is refused as absurd; >= 1.125)")
    priority_fee_gwei: float = _f(0.0, "maxPriorityFeePerGas in gwei (0 = the node's eth_feeHistory / suggestion)")
    max_priority_fee_gwei: float = _f(3.0, "never tip more than this maxPriorityFeePerGas (gwei), whatever the node "
                                           "suggests; fee bumps stop here too")
    max_fee_gwei: float = _f(1000.0, "never bid more than this maxFeePerGas (gwei)")
    max_attempts: int = _f(3, "proving or non-final revert attempts per window before it is failed")
    backoff_initial_seconds: float = _f(1.0, "first wait after an RPC failure (doubles, with jitter)")
    backoff_max_seconds: float = _f(30.0, "longest wait between RPC retries")
    keep_rows: int = _f(400, "good feed rows held in memory (and in the queue) to cut windows from")
    future_skew_seconds: float = _f(300.0, "a feed row dated more than this after the wall clock (or the chain's "
                                           "latest block time, if later) is quarantined (the breaker's FUTURE_SKEW)")
    attesters: tuple[str, ...] = _f(
        (), "attester service URLs (`sentinel attester serve`, one per party), asked in parallel for each window's "
        "signatures; the relay holds no attester key and submits once the breaker's quorum of registered attesters "
        "signed (a TOML array, or comma-separated in the environment); shown as scheme://host only", secret=True)
    report: str = _f("risk", "which windows are proved and sent: 'every' one, or in 'risk' mode only those that can "
                             "move the breaker (float score within risk_margin of the trip threshold, a streak in "
                             "progress, the breaker tripped, or a heartbeat due); the others are screened, their float "
                             "score and reason kept in the queue")
    risk_margin: float = _f(0.0, "risk mode proves a window whose float score is >= trip threshold - this (0 = "
                                 "auto: max(0.02, 2 x the circuit's measured max gap to the float model and its "
                                 "fidelity tolerance))")
    heartbeat_windows: int = _f(0, "risk mode: prove and send a window at least every this many windows, healthy or "
                                   "not, so watchers see the relay alive (0 = off)")
    attester_timeout_seconds: float = _f(10.0, "longest wait for one attester's answer (connecting: 2 s at most)")
    attester_retry_seconds: float = _f(2.0, "first wait before asking again for a window short of its quorum "
                                            "(doubles, with jitter, up to backoff_max_seconds)")
    metrics_host: str = _f("127.0.0.1", "address of /healthz and /metrics")
    metrics_port: int = _f(9464, "port of /healthz and /metrics (0 = off)")


@dataclass(frozen=True)
class AttesterConfig:
    """One attester party's service (`sentinel attester serve`): its key, its own feed, its node, its limits."""

    feed: str = _f("", "this party's own copy of the market-depth feed, a CSV or a directory of them ('' = data.feed); "
                       "relative to the project root")
    keyfile: str = _f("", "file holding this attester's one private key, mode 600, relative to the project root "
                          "(env SENTINEL_ATTESTER_KEY comes first; '' = demo_account)")
    demo_account: int = _f(-1, "sign with this Anvil dev account (demo only, local chain 31337 only; -1 = none)")
    host: str = _f("127.0.0.1", "address the service listens on")
    port: int = _f(9480, "port of POST /v1/attest, /healthz and /metrics")
    rpc_url: str = _f("", "this party's own JSON-RPC node: the latest block's time is the reference clock, and "
                          "start-up checks its chain id and the breaker's code ('' = the wall clock, no checks); "
                          "shown and logged as scheme://host only", secret=True)
    record: str = _f("", "SQLite record of every signature given, relative to the project root "
                         "('' = .sentinel/attester/signed.sqlite)")
    breaker: str = _f("", "address of the breaker it signs for ('' = the deployment's SentinelBreaker)")
    chain_id: int = _f(0, "chain id it signs for (0 = the deployment's)")
    max_age_seconds: int = _f(1800, "refuse a window that ended longer ago than this (the breaker's maxAge default)")
    poll_seconds: float = _f(1.0, "seconds between background reads of the feed (and of the node's clock)")
    max_body_bytes: int = _f(2048, "largest request body accepted (413 beyond)")
    rate_per_second: float = _f(20.0, "requests a second allowed per client address (token bucket; 429 beyond)")
    rate_burst: int = _f(40, "requests a client may send at once before the rate applies")
    keep_rows: int = _f(400, "good feed rows held in memory: windows older than these cannot be signed")


@dataclass(frozen=True)
class LifecycleConfig:
    """How a model moves from training to production: shadow scoring and the promotion criteria
    (docs/lifecycle.md). Production is whatever the breaker's verifier is; these settings decide when a
    candidate may be proposed to it."""

    shadow: tuple[str, ...] = _f((), "model versions (ids or unambiguous prefixes, `sentinel models list`) the relay "
                                     "float-scores beside production on every window, without proofs")
    min_shadow_windows: int = _f(1440, "windows a candidate must have been shadow-scored on before promotion "
                                       "(1440 = one day at 60 s)")
    recall_tolerance: float = _f(0.0, "promotion: a candidate's fresh-episode recall per crash family may be at "
                                      "most this below production's, on the same episodes")
    lead_tolerance_rows: float = _f(0.0, "promotion: its median lead to the price bottom may be at most this many "
                                         "rows below production's")


@dataclass(frozen=True)
class MarketConfig:
    """One guarded market, a ``[markets.<name>]`` table: its feed, its artifact set, its attesters, its asset.

    Each market gets its own breaker (pinned to its own verifier) and vault at ``sentinel deploy``.
    """

    name: str = _f(DEFAULT_MARKET, "the market's name, the table's: [a-z0-9_-]{1,32}")
    feed: str = _f("", "the market's depth feed, a CSV or a directory of them, relative to the project root "
                       "('' = data.feed)")
    artifacts: str = _f("", "directory of the market's artifact set, laid out like a project root (models/, "
                            "circuits/: what `sentinel onboard` writes), relative to the project root "
                            "('' = this project's own)")
    attesters: tuple[str, ...] = _f((), "attester service URLs that sign this market's windows (a TOML array; "
                                        "empty = relay.attesters)")
    asset: str = _f("", "label of the asset the market's vault moves, e.g. WETH ('' = the market's name; the "
                        f"implicit default market's is {DEFAULT_ASSET})")


@dataclass(frozen=True)
class SentinelConfig:
    """All of Sentinel's settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    attester: AttesterConfig = field(default_factory=AttesterConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    #: the guarded markets in file order; without ``[markets.<name>]`` tables, one named ``default``
    markets: tuple[MarketConfig, ...] = (MarketConfig(asset=DEFAULT_ASSET),)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict of every setting (for ``--json`` and model cards): ``{section: {key: value}}``, the
        markets as ``{"markets": {name: {key: value}}}``, so ``{"markets.NAME": table}`` overrides give them back
        to :func:`load_config`."""
        out = {name: dataclasses.asdict(getattr(self, name)) for name in _sections()}
        out["markets"] = {m.name: {k: v for k, v in dataclasses.asdict(m).items() if k != "name"}
                          for m in self.markets}
        return out


def _sections() -> dict[str, type]:
    """The ``[section]`` dataclasses by name (the markets' tables are apart: see :func:`_apply_market`)."""
    hints = typing.get_type_hints(SentinelConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(SentinelConfig) if f.name != "markets"}


#: The layers a value can come from, lowest precedence first.
SOURCES = ("default", "file", "env", "flag")


@dataclass(frozen=True)
class Source:
    """Where one setting's value came from: ``kind`` is one of :data:`SOURCES`; ``origin`` names the
    file or environment variable (``None`` for a default or a flag)."""

    kind: str
    origin: str | None = None


@dataclass(frozen=True)
class Setting:
    """One resolved setting, for ``sentinel config``."""

    name: str
    value: Any
    source: Source
    doc: str
    secret: bool = False  #: a URL that may carry credentials: show :func:`redact_url` of it only


@dataclass(frozen=True)
class ResolvedConfig:
    """The configuration and the source of every value in it."""

    config: SentinelConfig
    sources: dict[str, Source]
    file: Path

    def settings(self) -> list[Setting]:
        """Every setting (dotted name, value, source, doc), in declaration order."""
        rows: list[Setting] = []
        for section in _sections():
            sub = getattr(self.config, section)
            for f in dataclasses.fields(sub):
                name = f"{section}.{f.name}"
                rows.append(Setting(name, getattr(sub, f.name), self.sources[name], f.metadata.get("doc", ""),
                                    bool(f.metadata.get("secret", False))))
        for market in self.config.markets:
            for f in dataclasses.fields(market):
                if f.name != "name":
                    name = f"markets.{market.name}.{f.name}"
                    rows.append(Setting(name, getattr(market, f.name), self.sources[name], f.metadata.get("doc", "")))
        return rows


def _coerce(value: Any, target: Any, where: str) -> Any:
    """Convert a TOML/env/CLI value to the field's declared type: bool, int, float, str, or a list of strings
    (``tuple[str, ...]``: a TOML array of strings, or comma-separated text from the environment or a flag)."""
    try:
        if target == tuple[str, ...]:
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(v.strip() for v in value if v.strip())
            raise ValueError(f"not a list of strings: {value!r}")
        if target is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"true", "1", "yes", "on"}:
                return True
            if text in {"false", "0", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {value!r} (true or false)")
        if target is int or target is float:
            if isinstance(value, bool):  # TOML true would otherwise pass as 1
                raise ValueError(f"not a number: {value!r}")
            return target(value)
        if target is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    raise ConfigError(f"{where}: unsupported setting type {target!r}")


def _apply(
    values: dict[str, dict[str, Any]], sources: dict[str, Source], section: str, key: str, raw: Any,
    source: Source, where: str,
) -> None:
    sections = _sections()
    if section == "markets":
        _apply_market(values, sources, key, raw, source, where)
        return
    if section not in sections:
        raise ConfigError(f"{where}: unknown section '{section}' (known: {', '.join([*sections, 'markets'])})")
    cls = sections[section]
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if key not in names:
        raise ConfigError(
            f"{where}: unknown setting '{section}.{key}' (known: {', '.join(sorted(names))})"
        )
    values.setdefault(section, {})[key] = _coerce(raw, hints[key], where)
    sources[f"{section}.{key}"] = source


def _apply_market(
    values: dict[str, dict[str, Any]], sources: dict[str, Source], name: str, table: Any, source: Source, where: str,
) -> None:
    """One ``[markets.<name>]`` table (from the file, or a ``markets.<name>`` override holding a table, as
    :meth:`SentinelConfig.to_dict` gives them), field by field over what an earlier layer set."""
    table_name = f"[markets.{name}]"
    if not MARKET_NAME.fullmatch(name):
        raise ConfigError(f"{where}: {table_name}: a market name must match [a-z0-9_-]{{1,32}}")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {table_name} must be a table of market settings, got {type(table).__name__} "
                          "(markets are set in sentinel.toml)")
    hints = typing.get_type_hints(MarketConfig)
    names = sorted(f.name for f in dataclasses.fields(MarketConfig) if f.name != "name")
    market = values.setdefault("markets", {}).setdefault(name, {})
    for key, raw in table.items():
        if key not in names:
            raise ConfigError(f"{where}: {table_name}: unknown setting '{key}' (known: {', '.join(names)})")
        market[key] = _coerce(raw, hints[key], f"{where}: {table_name} {key}")
        sources[f"markets.{name}.{key}"] = source


def _build_markets(values: dict[str, dict[str, Any]], sources: dict[str, Source]) -> tuple[MarketConfig, ...]:
    """The configured markets in the order first named, each asset defaulting to its name; without any table,
    the implicit default market."""
    tables = values.get("markets") or {DEFAULT_MARKET: {"asset": DEFAULT_ASSET}}
    built = []
    for name, fields in tables.items():
        market = MarketConfig(name=name, **fields)
        built.append(market if market.asset else dataclasses.replace(market, asset=name))
        for f in dataclasses.fields(MarketConfig):
            if f.name != "name":
                sources.setdefault(f"markets.{name}.{f.name}", Source("default"))
    return tuple(built)


def config_file(root: Path, env: Mapping[str, str] | None = None) -> Path:
    """The configuration file: ``SENTINEL_CONFIG`` if set, else ``sentinel.toml`` in ``root``."""
    env = os.environ if env is None else env
    return Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else root / CONFIG_FILE_NAME


def resolve_config(
    root: Path,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Resolve defaults < sentinel.toml < SENTINEL_* env < ``overrides``, recording each value's source.

    ``overrides`` maps dotted names (``"data.cadence_seconds"``) to values (CLI
    flags); ``None`` values are ignored so unset flags fall through.
    """
    env = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {}
    sources = {name: Source("default") for name in _dotted_names()}

    path = config_file(root, env)
    if path.exists():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
        for section, table in document.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: '{section}' must be a [table]")
            for key, raw in table.items():
                if section == "markets":  # [markets.<name>] tables: the key is the market's name
                    _apply_market(values, sources, key, raw, Source("file", str(path)), str(path))
                else:
                    _apply(values, sources, section, key, raw, Source("file", str(path)), f"{path}: [{section}] {key}")
    elif ENV_PREFIX + "CONFIG" in env:
        raise ConfigError(f"{path}: configuration file named by {ENV_PREFIX}CONFIG does not exist")

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        _apply(values, sources, section, key, raw, Source("env", name), f"environment {name}")

    for dotted, raw in (overrides or {}).items():
        if raw is None:
            continue
        section, _, key = dotted.partition(".")
        _apply(values, sources, section, key, raw, Source("flag"), f"option {dotted}")

    built = {name: cls(**values.get(name, {})) for name, cls in _sections().items()}
    config = SentinelConfig(**built, markets=_build_markets(values, sources))
    _check(config)
    return ResolvedConfig(config, sources, path)


def load_config(
    root: Path,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> SentinelConfig:
    """The resolved configuration (see :func:`resolve_config`)."""
    return resolve_config(root, overrides, env).config


def _dotted_names() -> list[str]:
    return [f"{section}.{f.name}" for section, cls in _sections().items() for f in dataclasses.fields(cls)]


def _check(config: SentinelConfig) -> None:
    data = config.data
    if data.cadence_seconds < 0:
        raise ConfigError("data.cadence_seconds must be >= 0 (0 infers it from each file)")
    if data.max_gap_factor < 1:
        raise ConfigError("data.max_gap_factor must be >= 1")
    if data.blr_rel_tolerance < 0 or data.blr_abs_tolerance < 0:
        raise ConfigError("data.blr_*_tolerance must be >= 0")
    model = config.model
    for name in ("window", "units", "data_episodes", "epochs", "batch_size", "trip_after", "reset_after"):
        if getattr(model, name) < 1:
            raise ConfigError(f"model.{name} must be >= 1")
    parse_pooling(model.pooling, model.window)
    if model.scenarios not in ("classic", "ranges"):  # sentinel.data.synthetic.SCENARIO_SPACES
        raise ConfigError(f"model.scenarios must be 'classic' or 'ranges', not {model.scenarios!r}")
    if model.activations not in ("smooth", "hard"):  # sentinel.model.network.ACTIVATIONS
        raise ConfigError(f"model.activations must be 'smooth' or 'hard', not {model.activations!r}")
    if model.activations == "hard" and model.finetune_learning_rate == 0 and model.preactivation_bound > 0:
        raise ConfigError("model.preactivation_bound must be 0 for a hard model trained from scratch "
                          "(model.finetune_learning_rate = 0): it bounds a smooth model's lookup table")
    if model.early_weight < 0 or model.negative_weight < 0:
        raise ConfigError("model.early_weight and model.negative_weight must be >= 0 (0 = off)")
    if model.finetune_learning_rate < 0:
        raise ConfigError("model.finetune_learning_rate must be >= 0 (0 = train a hard model from scratch)")
    if model.feature_clip < 0 or model.preactivation_bound < 0:
        raise ConfigError("model.feature_clip and model.preactivation_bound must be >= 0 (0 = off)")
    if model.output_bound < 0:
        raise ConfigError("model.output_bound must be >= 0 (0 = model.preactivation_bound)")
    if model.output_bound > 0 and model.preactivation_bound == 0:
        raise ConfigError("model.output_bound must be 0 while model.preactivation_bound is 0 (it tightens that bound)")
    if model.output_bound > model.preactivation_bound > 0:
        raise ConfigError(f"model.output_bound must be <= model.preactivation_bound (it only tightens it): "
                          f"{model.output_bound:g} > {model.preactivation_bound:g}")
    if model.preactivation_bound > 0 and model.feature_clip == 0:
        raise ConfigError("model.feature_clip must be > 0 while model.preactivation_bound is set "
                          "(unclipped features are unbounded)")
    if model.horizon < 0:
        raise ConfigError("model.horizon must be >= 0")
    if not 0 < model.reset_ratio <= 1:
        raise ConfigError("model.reset_ratio must be in (0, 1]")
    circuit = config.circuit
    if circuit.input_visibility not in {"hashed", "public", "private"}:
        raise ConfigError("circuit.input_visibility must be hashed, public or private")
    if circuit.param_visibility not in {"fixed", "private", "public"}:
        raise ConfigError("circuit.param_visibility must be fixed, private or public")
    if circuit.check_mode not in {"safe", "unsafe"}:
        raise ConfigError("circuit.check_mode must be safe or unsafe")
    if (circuit.num_inner_cols < 1 or circuit.calibration_windows < 1 or circuit.fidelity_windows < 1
            or circuit.lookup_columns < 1):
        raise ConfigError(
            "circuit.num_inner_cols, calibration_windows, fidelity_windows and lookup_columns must be >= 1")
    if circuit.decomp_base < 2 or circuit.decomp_legs < 1:
        raise ConfigError("circuit.decomp_base must be >= 2 and circuit.decomp_legs >= 1")
    if circuit.cadence_seconds <= 0:
        raise ConfigError("circuit.cadence_seconds must be > 0")
    if circuit.batch_windows != 0 and not 2 <= circuit.batch_windows <= MAX_BATCH_WINDOWS:
        raise ConfigError(f"circuit.batch_windows must be 0 (no batch circuit) or 2..{MAX_BATCH_WINDOWS}, "
                          f"got {circuit.batch_windows}")
    parse_scales(circuit.scales)
    chain = config.chain
    if not 1 <= chain.port <= 65535:
        raise ConfigError("chain.port must be in 1..65535")
    if chain.rpc_url and not chain.rpc_url.startswith(("http://", "https://")):
        raise ConfigError(f"chain.rpc_url must be an http(s) URL, got '{chain.rpc_url}'")
    if chain.startup_seconds <= 0 or chain.receipt_timeout_seconds <= 0:
        raise ConfigError("chain.startup_seconds and chain.receipt_timeout_seconds must be > 0")
    for name in ("trip_threshold", "reset_threshold"):
        if not 0 <= getattr(chain, name) <= 1:
            raise ConfigError(f"chain.{name} must be in [0, 1] (0 = the model card's)")
    for name in ("trip_after", "reset_after", "cooldown_seconds", "max_age_seconds", "timelock_seconds"):
        if getattr(chain, name) < 0:
            raise ConfigError(f"chain.{name} must be >= 0")
    if chain.quorum < 1:
        raise ConfigError("chain.quorum must be >= 1")
    if chain.gas_headroom < 1:
        raise ConfigError("chain.gas_headroom must be >= 1")
    audit = config.audit
    if audit.log_chunk_blocks < 1 or audit.workers < 0 or audit.parallel_min_reports < 0:
        raise ConfigError("audit.log_chunk_blocks must be >= 1, audit.workers and audit.parallel_min_reports >= 0")
    if audit.score_tolerance < 0:
        raise ConfigError("audit.score_tolerance must be >= 0 (0 = circuit.fidelity_tolerance)")
    relay = config.relay
    if relay.rpc_url and not relay.rpc_url.startswith(("http://", "https://")):
        raise ConfigError(f"relay.rpc_url must be an http(s) URL, got '{relay.rpc_url}'")
    if relay.private_rpc_url and not relay.private_rpc_url.startswith(("http://", "https://")):
        # the value itself is not repeated: it may hold an API key
        raise ConfigError(f"relay.private_rpc_url must be an http(s) URL, got {redact_url(relay.private_rpc_url)!r}")
    if relay.confirmations < 1 or relay.max_attempts < 1 or relay.keep_rows < 1:
        raise ConfigError("relay.confirmations, relay.max_attempts and relay.keep_rows must be >= 1")
    if relay.executor not in {"local", "ray"}:
        raise ConfigError(f"relay.executor must be 'local' or 'ray', got {relay.executor!r}")
    if relay.executor == "ray" and not relay.ray_address:
        raise ConfigError("relay.executor = 'ray' needs relay.ray_address (the head's host:port)")
    if relay.provers < 0 or relay.prover_threads < 0 or relay.ray_actors < 0:
        raise ConfigError("relay.provers, relay.prover_threads and relay.ray_actors must be >= 0 (0 = auto)")
    if relay.fee_bump_percent < 12.5:
        raise ConfigError("relay.fee_bump_percent must be >= 12.5 (nodes refuse smaller replacements)")
    if relay.base_fee_multiplier < 1.125 or relay.priority_fee_gwei < 0 or relay.max_fee_gwei <= 0:
        raise ConfigError("relay.base_fee_multiplier must be >= 1.125 (a block may raise the base fee by 12.5 %), "
                          "priority_fee_gwei >= 0, max_fee_gwei > 0")
    if not 0 < relay.max_priority_fee_gwei <= relay.max_fee_gwei:
        raise ConfigError("relay.max_priority_fee_gwei must be > 0 and <= relay.max_fee_gwei")
    if relay.priority_fee_gwei > relay.max_priority_fee_gwei:
        raise ConfigError("relay.priority_fee_gwei must be <= relay.max_priority_fee_gwei")
    if relay.future_skew_seconds < 0:
        raise ConfigError("relay.future_skew_seconds must be >= 0")
    if relay.report not in ("every", "risk"):
        raise ConfigError(f"relay.report must be 'every' or 'risk', got {relay.report!r}")
    if not 0 <= relay.risk_margin < 1 or relay.heartbeat_windows < 0:
        raise ConfigError("relay.risk_margin must be in [0, 1) (0 = auto) and relay.heartbeat_windows >= 0 (0 = off)")
    for i, url in enumerate(relay.attesters):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"relay.attesters[{i}] must be an http(s) URL, got {redact_url(url) or url[:16]!r}")
    if len({u.rstrip("/") for u in relay.attesters}) != len(relay.attesters):
        raise ConfigError("relay.attesters: an attester URL appears twice (each party is asked once)")
    for i, url in enumerate(relay.rpc_urls):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"relay.rpc_urls[{i}] must be an http(s) URL, got {redact_url(url) or url[:16]!r}")
    seen: set[str] = set()
    for url in relay.rpc_urls:
        if url.rstrip("/") in seen:
            raise ConfigError(f"relay.rpc_urls: {redact_url(url)} appears twice (each endpoint must be listed once)")
        seen.add(url.rstrip("/"))
    if relay.rpc_max_lag_blocks < 1:
        raise ConfigError(f"relay.rpc_max_lag_blocks must be >= 1, got {relay.rpc_max_lag_blocks}")
    for name in ("interval_seconds", "stuck_seconds", "prove_timeout_seconds", "attester_timeout_seconds",
                 "attester_retry_seconds", "rpc_recheck_seconds"):
        if getattr(relay, name) <= 0:
            raise ConfigError(f"relay.{name} must be > 0, got {getattr(relay, name):g}")
    if not 0 < relay.backoff_initial_seconds <= relay.backoff_max_seconds:
        raise ConfigError("relay.backoff_initial_seconds must be > 0 and <= relay.backoff_max_seconds")
    if not 0 <= relay.metrics_port <= 65535:
        raise ConfigError("relay.metrics_port must be in 0..65535 (0 = off)")
    _check_attester(config.attester)
    _check_lifecycle(config.lifecycle)
    _check_markets(config.markets)


def _check_markets(markets: tuple[MarketConfig, ...]) -> None:
    for market in markets:
        where = f"[markets.{market.name}]"
        for i, url in enumerate(market.attesters):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{where} attesters[{i}] must be an http(s) URL, got "
                                  f"{redact_url(url) or url[:16]!r}")
        if len({u.rstrip("/") for u in market.attesters}) != len(market.attesters):
            raise ConfigError(f"{where} attesters: an attester URL appears twice (each party is asked once)")
        if not market.asset.strip():
            raise ConfigError(f"{where} asset must not be blank")


def _check_lifecycle(lifecycle: LifecycleConfig) -> None:
    if lifecycle.min_shadow_windows < 0:
        raise ConfigError(f"lifecycle.min_shadow_windows must be >= 0, got {lifecycle.min_shadow_windows}")
    if not 0 <= lifecycle.recall_tolerance <= 1:
        raise ConfigError(f"lifecycle.recall_tolerance must be in [0, 1], got {lifecycle.recall_tolerance:g}")
    if lifecycle.lead_tolerance_rows < 0:
        raise ConfigError(f"lifecycle.lead_tolerance_rows must be >= 0, got {lifecycle.lead_tolerance_rows:g}")
    for i, wanted in enumerate(lifecycle.shadow):
        if not re.fullmatch(r"v-[0-9a-f]{1,12}", wanted):
            raise ConfigError(f"lifecycle.shadow[{i}] must be a version id like v-3f2a9c01d4e5 (or a prefix of "
                              f"one), got {wanted[:40]!r}")


def _check_attester(attester: AttesterConfig) -> None:
    if not 1 <= attester.port <= 65535:
        raise ConfigError("attester.port must be in 1..65535")
    if attester.rpc_url and not attester.rpc_url.startswith(("http://", "https://")):
        raise ConfigError(f"attester.rpc_url must be an http(s) URL, got {redact_url(attester.rpc_url)!r}")
    if attester.breaker and not re.fullmatch(r"0x[0-9a-fA-F]{40}", attester.breaker):
        raise ConfigError(f"attester.breaker must be a 0x-prefixed 20-byte hex address, got {attester.breaker!r}")
    if attester.chain_id < 0 or attester.demo_account < -1:
        raise ConfigError("attester.chain_id must be >= 0 (0 = the deployment's) and attester.demo_account >= -1 "
                          "(-1 = none)")
    for name in ("max_age_seconds", "poll_seconds", "rate_per_second"):
        if getattr(attester, name) <= 0:
            raise ConfigError(f"attester.{name} must be > 0, got {getattr(attester, name):g}")
    if attester.max_body_bytes < 256:
        raise ConfigError(f"attester.max_body_bytes must be >= 256 (a request is about 250 bytes), got "
                          f"{attester.max_body_bytes}")
    if attester.rate_burst < 1 or attester.keep_rows < 1:
        raise ConfigError("attester.rate_burst and attester.keep_rows must be >= 1")


def parse_pooling(text: str, window: int) -> tuple[tuple[int, int], ...]:
    """``"40:8,10:2"`` -> ((40, 8), (10, 2)); segments must tile the window exactly."""
    segments: list[tuple[int, int]] = []
    for part in text.split(","):
        rows, sep, pool = part.strip().partition(":")
        try:
            segment = (int(rows), int(pool) if sep else 1)
        except ValueError:
            raise ConfigError(f"model.pooling: '{part.strip()}' is not ROWS:POOL") from None
        if segment[0] < 1 or segment[1] < 1 or segment[0] % segment[1]:
            raise ConfigError(f"model.pooling: '{part.strip()}': ROWS must be a positive multiple of POOL")
        segments.append(segment)
    if sum(r for r, _ in segments) != window:
        raise ConfigError(f"model.pooling '{text}' covers {sum(r for r, _ in segments)} rows, the window has {window}")
    if sum(r // p for r, p in segments) < 2:
        raise ConfigError(f"model.pooling '{text}' gives 1 step; steps must be at least 2 (the first is the baseline)")
    return tuple(segments)


def parse_scales(text: str) -> list[int] | None:
    """``"10,11"`` -> [10, 11]; ``""`` -> None (EZKL chooses)."""
    if not text.strip():
        return None
    try:
        scales = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"circuit.scales: '{text}' is not a comma-separated list of integers") from None
    if any(not 0 <= s <= 20 for s in scales):
        raise ConfigError("circuit.scales: each scale must be in 0..20")
    return scales
