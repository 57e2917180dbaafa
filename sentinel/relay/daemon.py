"""The relay daemon: one pass = read the feed, reconcile transactions, prove the next window, submit.

Windows go on chain in order, oldest still reportable first: the breaker's
streaks are runs of consecutive windows, so a skipped window that could have
been reported would end a run (see :func:`next_in_order`).

``sentinel relay once`` runs one pass; ``sentinel relay run`` runs passes until
SIGTERM/SIGINT, pausing ``interval_seconds`` when idle and backing off with
jitter while the RPC is down. All progress lives in the queue
(:mod:`sentinel.relay.queue`), so a pass can be cut anywhere (``kill -9``
included) and the next process resumes:

- ``proving`` at start-up means the proof was interrupted: back to ``new``
  (attempt counted) and the in-order rule decides again;
- ``submitted`` windows are reconciled from the chain: a stored transaction's
  receipt, else the stored raw bytes are broadcast again (never a new
  signature for a nonce already used), else, if another transaction took the
  nonce and none of ours was mined, the window is signed anew with a fresh
  nonce (the breaker itself refuses a window id twice).

With a private submission endpoint (``relay.private_rpc_url``) every raw
transaction goes there and the main node sees ours only once it is mined.
"Unknown to the main node" is then the normal state of an unmined
transaction, not a sign it was dropped: the same bytes are sent to the
private endpoint again only when this process has not sent them within
``stuck_seconds`` (after a restart, or a send that failed), and a transaction
unmined after ``stuck_seconds`` is bumped as usual (see :meth:`Relay._unmined`).

Never twice on chain: each window's transactions share one nonce, so at most
one of them can be mined; a window is signed anew only after the chain shows
that nonce used by someone else, and the breaker refuses any id that is not
newer than the last accepted one.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import DEFAULT_MARKET, SentinelConfig
from sentinel.data.feed import Feed, reference_time
from sentinel.data.windows import FUTURE_SKEW_SECONDS
from sentinel.errors import ChainError, ChainUnavailable, ContractRevert, ModelError, RelayError, SentinelError
from sentinel.relay.lane import UNDERPRICED, Fees, Lane, replacement_fees, within_caps
from sentinel.relay.policy import BatchPlan, auto_margin, decide, plan_batch
from sentinel.relay.queue import FINAL, Queue, QueueLock, TxRow, WindowRow
from sentinel.relay.server import RelayMetrics

log = logging.getLogger("sentinel.relay")

#: Reverts that mean the breaker will never take this window: final, not retried.
FINAL_REVERTS = frozenset({"WindowNotNewer", "StaleWindow", "BatchesDisabled", "BatchSizeMismatch"})
#: Reverts that a pending transaction meets when the breaker's signing policy changed under it (quorum raised,
#: an attester removed): its window is signed again under the policy now on chain, not sent as it is.
RESIGN_REVERTS = frozenset({"TooFewSignatures", "NotAttester", "InvalidSignature", "SignersNotAscending"})


def queue_path(layout: ArtifactLayout, config: SentinelConfig, db: Path | None = None) -> Path:
    """The relay's queue file: ``db``, else relay.db, else the project's ``.sentinel/relay/queue.sqlite``."""
    return Path(db or config.relay.db or layout.relay_db)


class MarketLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The relay's logger for one market: every line ends with ``market=<name>`` (one daemon, many markets)."""

    def __init__(self, logger: logging.Logger, market: str) -> None:
        super().__init__(logger, {"market": market})
        self.suffix = f" market={market}"

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{msg}{self.suffix}", kwargs


def kv(**fields: Any) -> str:
    """A log line's fixed ``key=value`` pairs (window, tx, attempt, ...), in the order given."""
    return " ".join(f"{k}={'-' if v is None else v}" for k, v in fields.items())


@dataclass
class PassResult:
    """What one pass did (``relay once`` prints it)."""

    rows: int = 0
    quarantined: int = 0
    enqueued: list[int] = field(default_factory=list)
    proved: list[int] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    screened: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """True if the pass changed anything (the loop then goes again at once)."""
        return bool(self.rows or self.proved or self.submitted or self.confirmed or self.screened)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: Seconds between the relay's last look at the chain and its report's inclusion, allowed for (two 12 s blocks): a
#: window this close to the breaker's max age is not sent, it would be mined stale and pay for a revert.
INCLUSION_MARGIN_SECONDS = 24
#: What a proof is assumed to take before one has been timed (the warm prover's first proof is slower).
FIRST_PROOF_SECONDS = 15.0


def oldest_end(now: int, max_age: int, *, prove_seconds: float | None = None) -> int:
    """The oldest window end worth proving (``prove_seconds`` given: twice that proof, then inclusion) or sending
    (``None``: inclusion only) at chain time ``now``: an older one would be stale by the time it is mined."""
    proving = 0 if prove_seconds is None else int(2 * max(prove_seconds, FIRST_PROOF_SECONDS))
    return now - max_age + proving + INCLUSION_MARGIN_SECONDS


def next_in_order(pending: dict[int, int], floor: int, oldest_end: int, stage: str
                  ) -> tuple[int | None, list[tuple[int, str]]]:
    """Pick the oldest of ``pending`` (window id -> window end) that can still be reported; skip the rest.

    The breaker's streaks are runs of consecutive windows (a report that does
    not follow the last accepted window starts them again), so the relay
    reports windows in order: skipping one that could still be reported would
    end a run in progress. Skipped, each with its reason: windows not newer
    than ``floor`` (the newest already proved, sent or confirmed: the breaker
    takes only newer ids) and windows ending before ``oldest_end`` (past the
    breaker's max age: nobody can report them any more). Newer windows wait
    their turn.
    """
    skipped: list[tuple[int, str]] = []
    for wid in sorted(pending):
        if wid <= floor:
            skipped.append((wid, f"not newer than window {floor}, already {stage} or sent"))
        elif pending[wid] < oldest_end:
            end = pending[wid]
            skipped.append((wid, f"too old to report: ends {end}, the breaker takes ends from {oldest_end}"))
        else:
            return wid, skipped
    return None, skipped


def submission_units(proved: Iterable[WindowRow]) -> dict[int, int]:
    """What goes on chain as one, keyed by its oldest window (whose id must be newer and whose end fresh): each
    window alone, or a batch; values are the leads (the window, or the batch's newest, which moves its batch)."""
    units: dict[int, int] = {}  # lead -> oldest window
    for w in proved:
        lead = w.window_id if w.batch_of is None else w.batch_of
        units[lead] = min(units.get(lead, w.window_id), w.window_id)
    return {first: lead for lead, first in units.items()}


@dataclass(frozen=True)
class BreakerNow:
    """The breaker's state and parameters as one read sees them."""

    last_window_id: int
    tripped: bool
    max_age: int
    quorum: int
    trip_threshold: float = 1.0
    high_streak: int = 0
    manual: bool = False
    batch_windows: int = 0  #: windows per batch proof the breaker takes (0: no batches)


class Relay:
    """The daemon's state and one-pass logic (see module doc)."""

    def __init__(self, layout: ArtifactLayout, config: SentinelConfig, *, data: Path | None = None,
                 rpc: str | None = None, db: Path | None = None, metrics: RelayMetrics | None = None,
                 clock: Any = time.time, market: str = DEFAULT_MARKET, artifacts: ArtifactLayout | None = None,
                 deployment: Any = None, attesters: tuple[str, ...] | None = None, lock: QueueLock | None = None,
                 nonce_lock: threading.Lock | None = None, executor: Any = None) -> None:
        """One market's relay: ``layout`` is the project (deployments, queue), ``artifacts`` the market's model and
        circuit (default: the project's), ``deployment`` its breaker (default: the project's only one),
        ``attesters`` its attester services (default: relay.attesters). The markets of one daemon share the
        queue file and its ``lock``, the signer's ``nonce_lock``, the ``metrics`` registry and the proving
        ``executor`` (default: its own, started by :meth:`load_prover`)."""
        from sentinel.chain.deploy import load_deployment

        self.layout = layout
        self.config = config
        self.rc = config.relay
        self.clock = clock
        self.market = market
        self.log = MarketLog(log, market)
        #: the market's configured artifact set: where its first model lives (the one in force is the breaker's)
        self.configured = artifacts or layout
        #: the market's model and circuits in force; its proof bundles in its own directory (window ids repeat
        #: across markets); switched by :meth:`_follow` when the breaker's verifier changes
        self.artifacts = self.configured.for_market(market)
        self.model: Any = None  #: the set in force's ModelSettings (window, cadence, vks), set by _use
        self._configured_id = _version_id(self.configured)
        self.model_version: str | None = self._configured_id  #: the set in force's version id (v-...)
        self.verifier: str | None = None  #: the breaker's verifier the artifacts were matched to (None: not yet)
        self._versions: list[Any] = []  #: the sets looked at on the last match
        self.attesters = tuple(attesters) if attesters else self.rc.attesters
        if not self.attesters:
            raise RelayError(f"market {market}: no attester services: the relay holds no attester key and asks the "
                             "attester services for signatures",
                             hint="start `sentinel attester serve` per attester party and list their URLs in "
                                  "relay.attesters (or SENTINEL_RELAY__ATTESTERS=url,url), or the market's attesters")
        self.deployment = deployment or load_deployment(layout)
        # endpoints in order of preference: an explicit rpc alone, else relay.rpc_urls, else relay.rpc_url
        self.rpc = rpc or (self.rc.rpc_urls[0] if self.rc.rpc_urls else self.rc.rpc_url) or None
        self.rpc_fallbacks = () if rpc else self.rc.rpc_urls[1:]
        self.window = 0
        self.cadence = 0.0
        self.margin = 0.0  #: risk mode proves windows whose float score is within this of the trip threshold
        self.batch_windows = 0  #: windows per batch proof the artifacts prove (0: none built, or it cannot load)
        self._scorer: Any = None
        #: the last float score computed: ((window, artifact set), score), shared by the policy and shadow scoring
        self._last_float: tuple[tuple[int, Path], float] | None = None
        self._use(self.artifacts)
        from sentinel.relay.shadow import shadow_versions

        candidates = shadow_versions(config, layout)  # before the lock: an unknown version stops the relay here
        self.data_path = Path(data) if data else layout.feed(config.data.feed)
        path = queue_path(layout, config, db)
        #: one relay per queue file; the markets of one relay share its lock (and release it once)
        self._own_lock = lock is None
        self.lock = lock or QueueLock(path)  # before anything reads or resets the queue
        self.queue = Queue(path, clock=clock, market=market)
        #: held from choosing a nonce to handing the transaction to the node: markets share one signer
        self.nonce_lock = nonce_lock or threading.Lock()
        self.feed = Feed(self.data_path, config.data, self.cadence, self.window, self.rc.keep_rows,
                         state=self.queue.get_meta("feed"), clock=self._feed_clock,
                         future_skew=self.rc.future_skew_seconds)
        self.registry = metrics or RelayMetrics()  #: every market's metrics (served by /metrics)
        self.metrics = self.registry.market(market)
        from sentinel.relay.shadow import ShadowScorer

        #: the candidate versions float-scored beside production (lifecycle.shadow), None without any
        self.shadow = ShadowScorer(candidates, self.queue, self.log, self.metrics, clock) if candidates else None
        if candidates:
            self.log.info("event=shadow_scoring %s", kv(versions=",".join(v.id for v in candidates)))
        self.chain: Any = None
        self.breaker: Any = None
        self._lane: Lane | None = None
        self.executor: Any = executor  #: the proving executor (relay.executor): shared, else started by load_prover
        self._owns_executor = False
        self._warm = False  #: this market's provers are loaded in the executor
        self._flat: dict[str, Any] = {}  #: the settings as flat overrides, for the executor's provers
        self._proved_by: str | None = None  #: the worker (and Ray node) of the last proof
        self.max_age = int(self.deployment.policy.get("max_age_seconds", 1800))  #: re-read from the chain
        self.last_prove_seconds = 0.0
        self.last_batch_seconds = 0.0
        self._solo: int | None = None  #: a window whose batch failed to prove: proved alone next
        self.ready = False
        self.last_error: str | None = None
        self.last_pass_at: float | None = None
        self.tripped: bool | None = None
        #: when this process last handed each unmined transaction to a node (hash -> clock); with a private
        #: endpoint this, not the main node's pool, says whether the bytes need sending again
        self._sent_at: dict[str, float] = {}
        #: windows short of their attester quorum: window id -> (rounds asked, clock of the next round)
        self._attest_retry: dict[int, tuple[int, float]] = {}
        self._attest_backoff = Backoff(self.rc.attester_retry_seconds, self.rc.backoff_max_seconds)
        #: for /healthz: each attester's last answer, and the window waiting for signatures (if any)
        self.attester_answers: dict[str, dict[str, Any]] = {}
        self.attest_shortfall: dict[str, Any] | None = None
        self._resume()

    @property
    def lane(self) -> Lane:
        """The signer lane, set up by :meth:`connect`."""
        if self._lane is None:
            raise RelayError("no signer lane before the relay has connected to the node")
        return self._lane

    def _feed_clock(self) -> float:
        """Reference time for feed rows (:func:`sentinel.data.feed.reference_time`)."""
        seen = self._lane.last_block_time if self._lane is not None else None
        return reference_time(self.clock(), seen)

    # -- start-up -----------------------------------------------------------------------
    def _resume(self) -> None:
        """A window left in ``proving`` was interrupted (crash, kill): prove it again if still reportable."""
        for w in self.queue.windows("proving"):
            if w.batch_of not in (None, w.window_id):
                continue  # moves with its batch's lead
            self.queue.transition(w.window_id, "new", last_error="interrupted while proving; retried")
            self.log.warning("event=resume_proving %s", kv(window=w.window_id, attempt=w.attempts))
        for w in self.queue.windows("submitted"):
            self.log.info("event=resume_submitted %s", kv(window=w.window_id, tx=w.tx_hash, nonce=w.nonce,
                                                        attempt=w.attempts))

    def connect(self) -> None:
        """Connect to the node (once; ChainUnavailable while it is down) and set up the signer lane."""
        if self.chain is not None:
            return
        from sentinel.chain.breaker import BREAKER, connect, contract
        from sentinel.chain.client import SendOnlyEndpoint
        from sentinel.chain.keys import role_key
        from sentinel.config import redact_url

        chain = connect(self.deployment, self.config, self.rpc, fallbacks=self.rpc_fallbacks)
        # The relay has its own backoff; web3's silent retries would only hide an outage for seconds.
        chain.stop_retrying()
        self.key = role_key("relay", chain.chain_id)
        if self.key.demo:
            self.log.warning("event=demo_key %s", kv(address=self.key.address, origin=self.key.origin))
        self.breaker = contract(chain, self.deployment, BREAKER)
        private = SendOnlyEndpoint(self.rc.private_rpc_url) if self.rc.private_rpc_url else None
        self._lane = Lane(chain, self.key, multiplier=self.rc.base_fee_multiplier,
                         priority_gwei=self.rc.priority_fee_gwei, cap_gwei=self.rc.max_fee_gwei,
                         bump_percent=self.rc.fee_bump_percent, priority_cap_gwei=self.rc.max_priority_fee_gwei,
                         private=private, fallback_public=self.rc.private_fallback_public)
        self.chain = chain
        self.log.info("event=connected %s", kv(rpc=redact_url(chain.rpc_url), chain=chain.chain_id,
                                           signer=self.key.address, breaker=self.breaker.address,
                                           attesters=len(self.attesters),
                                           private_rpc=private.label if private else None,
                                           fallback_public=self.rc.private_fallback_public if private else None))

    # -- following the breaker's verifier ---------------------------------------------------
    def _use(self, artifacts: ArtifactLayout) -> None:
        """Prove, score and cut windows with the artifact set at ``artifacts`` from now on (its manifest's window,
        cadence, batch size and fidelity margin; a fresh float scorer; its provers warmed on the next proof)."""
        from sentinel.in_force import settings_of

        model = settings_of(artifacts)
        self.artifacts, self.model = artifacts, model
        self.window, self.cadence, self.batch_windows = model.window, model.cadence, model.batch_windows
        self.margin = self.rc.risk_margin or auto_margin(model.max_abs_error, self.config.circuit.fidelity_tolerance)
        self._scorer = None
        self._last_float = None
        self._warm = False
        feed = getattr(self, "feed", None)
        if feed is not None and (feed.window, feed.cadence) != (self.window, self.cadence):
            # the rows held so far are kept; windows are cut at the new model's size and cadence from here on
            self.feed = Feed(self.data_path, self.config.data, self.cadence, self.window, self.rc.keep_rows,
                             state=feed.state(), clock=self._feed_clock, future_skew=self.rc.future_skew_seconds)

    def _follow(self, verifier: str) -> None:
        """Match the artifact set to the breaker's verifier ``verifier`` (its runtime code, among every set Sentinel
        knows for this market); switch sets when it is another model's. UnknownModel when no set has its code:
        this market then proves nothing until one is added (each pass asks again)."""
        from sentinel.in_force import candidate_sets, in_force

        self._versions = candidate_sets(self.config, self.layout, self.configured)
        version = in_force(self._versions, verifier, self.chain.code(verifier))
        before, matched = self.model_version, self.verifier
        if version.id != self.model_version:
            mine = self.configured.for_market(self.market)
            # another set's proof bundles still go to this market's proofs directory, never into the set
            other = replace(version.layout, proofs=str(mine.proofs_dir))
            self._use(mine if version.id == self._configured_id else other)
            self.model_version = version.id
        self.verifier = verifier
        if before is not None:
            self.metrics.model.remove(before)
        self.metrics.model.labels(version=version.id).set(1)
        if matched is None:
            self.log.info("event=model_in_force %s", kv(version=version.id, verifier=verifier, window=self.window,
                                                        cadence=f"{self.cadence:g}"))
        elif before != version.id:
            self.metrics.model_switches.inc()
            self.log.warning("event=model_switched %s", kv(**{"from": before}, to=version.id, verifier=verifier,
                                                           block=self._changed_at(verifier)))
        self._prove_again_with_model(before)

    def _follow_verifier(self) -> None:
        """Read the breaker's verifier (one call) and follow it if it changed since the artifacts were matched."""
        verifier = str(self.chain.call(self.breaker.functions.verifier(), "reading verifier"))
        if verifier != self.verifier:
            self._follow(verifier)

    def _changed_at(self, verifier: str) -> int | None:
        """The block of the breaker's latest VerifierChanged to ``verifier`` (None if the logs do not show it)."""
        try:
            with self.chain._seam("reading VerifierChanged events"):
                changes = self.breaker.events.VerifierChanged().get_logs(
                    from_block=self.deployment.block, argument_filters={"verifier": verifier})
        except ChainError:
            return None
        return max((int(e["blockNumber"]) for e in changes), default=None)

    def _of_other_model(self, bundle: str | None) -> bool:
        """True when the proof bundle at ``bundle`` was proved with another model than the set in force (its vk is
        none of the set's; a bundle that cannot be read is left to the step that reads it)."""
        from sentinel.in_force import bundle_vk

        vk = bundle_vk(bundle)
        return bool(self.model.vk_sha256) and vk is not None and vk not in self.model.vk_sha256

    def _model_of(self, bundle: str | None, fallback: str | None) -> str:
        """The version id whose circuit proved ``bundle`` (among the sets looked at), else ``fallback``."""
        from sentinel.in_force import bundle_vk, settings_of

        vk = bundle_vk(bundle)
        for version in self._versions:
            if version.built and vk in settings_of(version.layout).vk_sha256:
                return str(version.id)
        return fallback or f"vk {str(vk)[:12]}"

    def _prove_again_with_model(self, before: str | None) -> None:
        """Every proved window (not yet sent) whose proof is of another model than the one in force goes back to
        ``new``: it is proved again with the set in force if still fresh (a proof of the old model would revert,
        or worse, count under the new verifier's scale)."""
        for w in self.queue.windows("proved"):
            if w.batch_of not in (None, w.window_id) or not self._of_other_model(w.bundle):
                continue
            old = self._model_of(w.bundle, before)
            self.queue.transition(w.window_id, "new", last_error=f"proved with model {old}, the breaker's verifier is "
                                                                 f"model {self.model_version} now: proving again")
            self._attest_retry.pop(w.window_id, None)
            self.log.warning("event=prove_again %s from=%s to=%s", kv(window=w.window_id), old, self.model_version)

    def load_prover(self) -> None:
        """Start the proving executor, unless the daemon shares one, and warm this market's provers in it (they
        load the circuits, seconds); once."""
        if self._warm:
            return
        from sentinel.relay.executor import make_executor
        from sentinel.relay.prover import _flat

        self._flat = _flat(self.config)
        if self.executor is None:  # one market proves one window at a time: auto sizing gives it every core
            self.executor = make_executor(self.config, at_once=1)
            self._owns_executor = True
        info = self.executor.warm(str(self.artifacts.root), self._flat)
        self._warm = True
        if self.batch_windows and info.batch_windows != self.batch_windows:
            # single proofs go on (the trip path needs nothing else); windows while tripped go alone
            self.log.error("event=batch_unavailable windows=%d error=%r: every window is proved alone",
                           self.batch_windows, info.batch_error or "the batch circuit did not load")
            self.batch_windows = 0

    def _prove(self, wid: int, end_unix: int, market: Any, ends: list[int], now: int) -> Any:
        """Prove ``ends`` of ``market`` (window ``wid``, a batch's lead; ``end_unix``: its oldest window's end)
        through the executor with the real deadline (that end plus the breaker's max age, less inclusion, from
        chain time ``now`` onto this clock); RelayError if it could not, None if it would be proved stale."""
        from sentinel.relay.executor import ProofJob

        arrived = self.clock()
        deadline = arrived + (end_unix + self.max_age - INCLUSION_MARGIN_SECONDS - now)
        job = ProofJob((self.market, wid), str(self.artifacts.root), self._flat, market, tuple(ends), deadline,
                       arrived, self.artifacts.proofs)
        outcome = self.executor.prove(job, timeout=self.rc.prove_timeout_seconds * self.rc.max_attempts + 60)
        if outcome.status == "error":
            raise RelayError(outcome.error or "the prover failed")
        if outcome.status == "stale":
            return None
        self._proved_by = outcome.worker if outcome.node is None else f"{outcome.worker}@{outcome.node}"
        return outcome.result

    def close(self) -> None:
        if self.executor is not None and self._owns_executor:
            self.executor.close()
        self.queue.close()
        if self._own_lock:
            self.lock.release()

    # -- one pass -------------------------------------------------------------------------
    def run_once(self, stop: threading.Event | None = None) -> PassResult:
        """One pass: ingest, reconcile, prove the newest window, submit, reconcile; RPC errors propagate."""
        result = PassResult()
        self.ingest(result)
        self.connect()
        # every pass: the breaker's verifier says which model is in force (before anything is reconciled or proved,
        # so a restart at an upgrade proves with the new model)
        self._follow_verifier()
        head = self.lane.head()
        self.reconcile(result, head)
        if stop is None or not stop.is_set():
            self.prove_next(result, head)
        if stop is None or not stop.is_set():
            head = self.lane.head()
            self.submit_next(result, head)
            self.reconcile(result, self.lane.head())
        self.tripped = self._breaker_now().tripped
        self.ready = True
        self.last_error = None
        self.last_pass_at = self.clock()
        self.refresh_metrics()
        return result

    def ingest(self, result: PassResult) -> None:
        """New feed rows -> quarantine the bad ones, enqueue new windows (with the cursor, atomically)."""
        poll = self.feed.poll()
        for bad in poll.bad:
            if self.queue.quarantine(bad.source, bad.line, bad.column, bad.problem, bad.raw):
                self.metrics.quarantined.inc()
                result.quarantined += 1
                self.log.warning("event=row_quarantined %s problem=%r", kv(source=bad.source, line=bad.line,
                                                                       column=bad.column), bad.problem)
        if not (poll.rows or poll.bad):
            return
        top = self.queue.max_id()
        fresh = [(w.window_id, w.end_unix, w.source, w.end_line) for w in poll.windows
                 if top is None or w.window_id > top]
        added = self.queue.commit_feed(self.feed.state(), fresh)
        result.rows += len(poll.rows)
        result.enqueued += added
        for wid in added:
            self.log.debug("event=enqueued %s", kv(window=wid))

    # -- proving ----------------------------------------------------------------------------
    def _skip(self, result: PassResult, window_id: int, reason: str) -> None:
        self.queue.transition(window_id, "skipped", reason=reason)
        result.skipped.append(window_id)
        self.log.info("event=skipped %s reason=%r", kv(window=window_id), reason)

    def _floor(self) -> int:
        """Highest id already proved, in flight or confirmed: an older window is useless after it."""
        ids = [w.window_id for w in self.queue.windows("proved", "submitted", "confirmed")]
        return max(ids) if ids else -1

    def prove_next(self, result: PassResult, head: Any) -> None:
        """Prove the oldest new window that can still be reported (windows go on chain in order); in ``risk``
        mode the windows before it that cannot move the breaker are screened on the way (see policy.py)."""
        pending = {w.window_id: w for w in self.queue.windows("new", "held")}
        now = int(head["timestamp"])
        breaker = self._breaker_now()
        self.max_age = breaker.max_age
        # A window must still be fresh when its proof and transaction are done
        oldest = oldest_end(now, self.max_age, prove_seconds=self.last_prove_seconds)
        while True:
            chosen, skips = next_in_order({wid: w.end_unix for wid, w in pending.items()}, self._floor(),
                                          oldest, "proved")
            for wid, reason in skips:
                self._skip(result, wid, reason)
                pending.pop(wid)
            if chosen is None:
                return
            market = self.feed.market_for(chosen)
            if market is None:
                self._skip(result, chosen, "its rows are no longer held by the feed")
                pending.pop(chosen)
                continue
            self._shadow(chosen, pending[chosen].end_unix, market)
            if chosen == self._solo:
                self._solo = None  # its batch failed to prove: this window goes alone, the next ones batch again
            elif self._batching(breaker):
                k = breaker.batch_windows
                plan = plan_batch(chosen, {wid: w.end_unix for wid, w in pending.items()}, k=k,
                                  cadence=int(self.cadence), now=now,
                                  latest=pending[chosen].end_unix + breaker.max_age - int(self._batch_margin(k)))
                if plan.action == "hold":
                    self._hold(plan, pending)
                    return
                why = plan.reason
                if plan.action == "batch":
                    rows = self.feed.market_for(plan.windows[-1], before=len(plan.windows) - 1)
                    if rows is not None:
                        for wid in plan.windows[1:]:  # the batch's first window is ``chosen``, scored above
                            self._shadow(wid, pending[wid].end_unix, self.feed.market_for(wid))
                        self._prove_batch(result, plan, rows, now)
                        return
                    why = f"no gap-free rows held for windows {plan.windows[0]}-{plan.windows[-1]}: proved alone"
                self.log.info("event=batch_released %s reason=%r", kv(window=chosen), why)
            elif self._screen(result, chosen, market, breaker):
                pending.pop(chosen)
                continue
            break
        self.load_prover()
        w = self.queue.transition(chosen, "proving", count_attempt=True)
        self.log.info("event=proving %s", kv(window=w.window_id, attempt=w.attempts))
        try:
            proved = self._prove(w.window_id, w.end_unix, market, [len(market) - 1], now)
        except SentinelError as exc:
            target = "failed" if w.attempts >= self.rc.max_attempts else "new"
            self.queue.transition(w.window_id, target, last_error=str(exc))
            self.log.error("event=prove_failed %s error=%r", kv(window=w.window_id, attempt=w.attempts, next=target),
                           str(exc))
            result.errors.append(str(exc))
            return
        if proved is None:
            self._skip(result, w.window_id, f"stale: its proof would be done after ends {w.end_unix} + max age "
                                            f"{self.max_age} s less inclusion")
            return
        if proved.window_id != w.window_id:
            raise RelayError(f"window {w.window_id}: the prover made window {proved.window_id} (cadence mismatch?)")
        self.last_prove_seconds = proved.prove_seconds
        self.queue.transition(w.window_id, "proved", bundle=str(proved.bundle), score=proved.score,
                              prove_seconds=proved.prove_seconds, proved_at=self.clock())
        self.metrics.prove_seconds.observe(proved.prove_seconds)
        result.proved.append(w.window_id)
        self.log.info("event=proved %s score=%.4f seconds=%.1f worker=%s", kv(window=w.window_id, attempt=w.attempts),
                      proved.score, proved.prove_seconds, self._proved_by)

    def _batching(self, breaker: BreakerNow) -> bool:
        """Whether windows go in K-window batch proofs now: the breaker is tripped by scores (recovery needs every
        calm window, and a report's latency only delays the unpause), takes the batches this relay can prove, and
        a batch's first window, K-1 cadences old when the last arrives, can still be proved and mined fresh."""
        k = breaker.batch_windows
        return (breaker.tripped and not breaker.manual and k > 1 and k == self.batch_windows
                and (k - 1) * self.cadence + self._batch_margin(k) < breaker.max_age)

    def _batch_margin(self, k: int) -> float:
        """Seconds a batch's first window needs before the breaker's max age: two batch proofs (the last one
        measured, else K first proofs) and inclusion, as :func:`oldest_end` reckons for one window."""
        return 2 * max(self.last_batch_seconds, k * FIRST_PROOF_SECONDS) + INCLUSION_MARGIN_SECONDS

    def _hold(self, plan: BatchPlan, pending: dict[int, WindowRow]) -> None:
        for wid in plan.windows:
            if pending[wid].state == "new":
                self.queue.transition(wid, "held", reason=plan.reason)
                self.log.info("event=held %s reason=%r", kv(window=wid), plan.reason)

    def _prove_batch(self, result: PassResult, plan: BatchPlan, market: Any, now: int) -> None:
        """Prove ``plan.windows`` (consecutive, oldest first; ``market``: their rows) in one batch proof; they move
        as one from here on."""
        ids = list(plan.windows)
        self.load_prover()
        lead = self.queue.start_batch(ids, reason=plan.reason)
        self.log.info("event=proving_batch %s windows=%d-%d", kv(window=lead.window_id, attempt=lead.attempts), ids[0],
                      ids[-1])
        ends = list(range(len(market) - len(ids), len(market)))
        try:
            proved = self._prove(lead.window_id, self.queue.get(ids[0]).end_unix, market, ends, now)
        except SentinelError as exc:
            # Back to new and dissolved: the oldest window goes alone next, so one bad window costs only itself
            self._solo = ids[0]
            target = "failed" if lead.attempts >= self.rc.max_attempts else "new"
            self.queue.transition(lead.window_id, target, last_error=str(exc))
            self.log.error("event=prove_failed %s windows=%d-%d error=%r",
                           kv(window=lead.window_id, attempt=lead.attempts, next=target), ids[0], ids[-1], str(exc))
            result.errors.append(str(exc))
            return
        if proved is None:
            self._skip(result, lead.window_id, f"stale: batch {ids[0]}-{ids[-1]} would be proved after window "
                                               f"{ids[0]}'s max age {self.max_age} s less inclusion")
            result.skipped.extend(ids[:-1])  # they moved with their lead
            return
        got = proved.window_ids
        if got != ids:
            raise RelayError(f"windows {ids[0]}-{ids[-1]}: the prover made windows {got} (cadence mismatch?)")
        self.last_prove_seconds = self.last_batch_seconds = proved.prove_seconds
        share = proved.prove_seconds / len(ids)  # each window's share: summed over windows, the proof's time
        self.queue.transition(lead.window_id, "proved", bundle=str(proved.bundle), proved_at=self.clock(),
                              per_window={int(w["window_id"]): {"score": float(w["score"]),
                                                                "float_score": float(w["float_score"]),
                                                                "prove_seconds": share}
                                          for w in proved.windows})
        self.metrics.prove_seconds.observe(proved.prove_seconds)
        result.proved.extend(ids)
        self.log.info("event=proved_batch %s windows=%d-%d scores=%s seconds=%.1f worker=%s",
                      kv(window=lead.window_id, attempt=lead.attempts), ids[0], ids[-1],
                      ",".join(f"{float(w['score']):.4f}" for w in proved.windows), proved.prove_seconds,
                      self._proved_by)

    def _screen(self, result: PassResult, wid: int, market: Any, breaker: BreakerNow) -> bool:
        """Apply the reporting policy to ``wid``: True if it was screened (final, float score and reason kept)."""
        if self.rc.report == "every":
            return False
        score = self._float_score(wid, market)
        # windows proved or in flight but not yet on chain may extend the breaker's high streak too
        in_flight_high = sum(1 for w in self.queue.windows("proved", "submitted")
                             if w.window_id > breaker.last_window_id
                             and max(w.score or 0.0, w.float_score or 0.0) >= breaker.trip_threshold - self.margin)
        decision = decide(self.rc.report, wid, score, trip_threshold=breaker.trip_threshold, margin=self.margin,
                          tripped=breaker.tripped, manual=breaker.manual,
                          high_streak=breaker.high_streak + in_flight_high,
                          last_reported=max(self._floor(), breaker.last_window_id),
                          heartbeat_windows=self.rc.heartbeat_windows)
        self.metrics.float_score.set(score)
        if decision.prove:
            self.queue.update(wid, float_score=score, reason=decision.reason)
            self.log.info("event=to_prove %s float_score=%.4f why=%s", kv(window=wid), score, decision.why)
            return False
        self.queue.transition(wid, "screened", float_score=score, reason=decision.reason)
        result.screened.append(wid)
        self.log.info("event=screened %s float_score=%.4f reason=%r", kv(window=wid), score, decision.reason)
        return True

    def _float_score(self, wid: int, market: Any) -> float:
        """The float model's score of window ``wid`` (``market``: its rows), computed once per window and set."""
        key = (wid, self.artifacts.root)
        if self._last_float is None or self._last_float[0] != key:
            self._last_float = key, float(self._float_model()(market.features()[None, -self.window:])[0])
        return self._last_float[1]

    def _shadow(self, wid: int, end_unix: int, market: Any) -> None:
        """Shadow-score window ``wid`` with the candidate versions (lifecycle.shadow), if any; never raises."""
        if self.shadow is not None and market is not None:
            self.shadow.score(wid, end_unix, market, self.artifacts, lambda: self._float_score(wid, market))

    def _float_model(self) -> Any:
        """The float model (onnxruntime), loaded on first use."""
        if self._scorer is None:
            from sentinel.model.export import OnnxScorer

            self._scorer = OnnxScorer(self.artifacts.onnx_model)
        return self._scorer

    # -- submitting --------------------------------------------------------------------------
    def _reject(self, result: PassResult, window_id: int, reason: str) -> None:
        self.queue.transition(window_id, "rejected", reason=reason)
        result.rejected.append(window_id)
        self.log.warning("event=rejected %s reason=%r", kv(window=window_id), reason)

    def _breaker_now(self) -> BreakerNow:
        """What the relay needs of the breaker, read now (governance may change any of it at once).

        The breaker's verifier says which model is in force: when it is no longer the one the artifacts were
        matched to, the relay switches sets first (:meth:`_follow`). The breaker's cadence must then be that
        model's; if governance set another one, windows would be proved and id'd for the wrong model: a stop,
        not a reason to reject window after window.
        """
        from sentinel.chain.encoding import from_wad

        f = self.breaker.functions
        self._follow_verifier()
        state = self.chain.call(f.state(), "reading state")
        params = self.chain.call(f.params(), "reading params")
        cadence = int(self.chain.call(f.cadence(), "reading cadence"))
        # a breaker deployed before batches has no batchWindows: it takes none
        has_batches = any(item.get("name") == "batchWindows" for item in self.breaker.abi)
        batch_windows = int(self.chain.call(f.batchWindows(), "reading batchWindows")) if has_batches else 0
        if cadence != int(self.cadence):
            raise RelayError(f"the breaker derives window ids at a {cadence} s cadence, but its verifier's model "
                             f"{self.model_version} has a {self.cadence:g} s cadence (its circuit manifest): "
                             "governance set a cadence that is not the model's")
        return BreakerNow(last_window_id=int(state[1]) // cadence if int(state[1]) else -1,
                          tripped=bool(state[5]), max_age=int(params[5]), quorum=int(params[6]),
                          trip_threshold=from_wad(int(params[0])), high_streak=int(state[3]), manual=bool(state[6]),
                          batch_windows=batch_windows)

    def _registered_attesters(self) -> set[str]:
        """The breaker's attesters *now*, lower-case (read every time: governance may change them)."""
        attesters = self.chain.call(self.breaker.functions.attesters(), "reading attesters")
        return {str(a).lower() for a in attesters}

    def _last_on_chain(self) -> int:
        """The last accepted window's id at the breaker's cadence (-1 before the first report)."""
        return self._breaker_now().last_window_id

    def submit_next(self, result: PassResult, head: Any) -> None:
        """Gather the attesters' signatures for the oldest proved window (or batch) and send it, if no transaction
        of ours is still unmined."""
        from sentinel.chain.encoding import (
            message_for,
            messages_for_batch,
            read_batch_bundle,
            read_bundle,
            submit_args,
            submit_batch_args,
        )

        if any(w.block_number is None for w in self.queue.windows("submitted")):
            return  # one unmined transaction at a time: the lane stays in nonce order
        proved = {w.window_id: w for w in self.queue.windows("proved")}
        self._attest_retry = {wid: v for wid, v in self._attest_retry.items() if wid in proved}
        in_flight = [w.window_id for w in self.queue.windows("submitted", "confirmed")]
        now = int(head["timestamp"])
        firsts = submission_units(proved.values())
        chosen, skips = next_in_order({first: proved[first].end_unix for first in firsts}, max(in_flight, default=-1),
                                      oldest_end(now, self.max_age), "submitted")
        for first, reason in skips:
            lead = firsts[first]
            self._skip(result, lead, reason if lead == first else f"window {first} of its batch: {reason}")
        if chosen is None:
            return
        windows = self.queue.batch(chosen)  # the window, or every window of its batch, oldest first
        newest, oldest = windows[-1], windows[0]
        wid = newest.window_id
        breaker = self._breaker_now()  # one read for the id check, the quorum and the model in force
        if self.queue.get(wid).state != "proved":
            return  # the verifier changed under it: back to new, proved again with the model in force
        last = breaker.last_window_id
        if oldest.window_id <= last:
            self._reject(result, wid, f"WindowNotNewer: the breaker's last window is {last} (checked before sending)")
            return
        if oldest.end_unix < oldest_end(now, self.max_age):
            self._reject(result, wid, f"StaleWindow: ends {oldest.end_unix}, chain time {now}, max age {self.max_age} "
                                      f"s, less than {INCLUSION_MARGIN_SECONDS} s to be mined (checked before sending)")
            return
        if newest.end_unix > now + FUTURE_SKEW_SECONDS:
            self.log.info("event=waiting_for_chain_time %s", kv(window=wid, window_end=newest.end_unix, chain_time=now))
            return
        if newest.bundle is None:
            raise RelayError(f"window {wid} is proved but the queue holds no bundle path for it")
        args: tuple[Any, ...]
        if len(windows) > 1:
            batch = read_batch_bundle(Path(newest.bundle))
            signed = [self._attest(result, m.window_id, message, breaker.quorum)
                      for m, message in zip(windows, messages_for_batch(batch), strict=True)]
            if any(s is None for s in signed):
                return
            name, args = "submitBatch", submit_batch_args(batch, signed, breaker.quorum)
        else:
            bundle = read_bundle(Path(newest.bundle))
            one = self._attest(result, wid, message_for(bundle), breaker.quorum)
            if one is None:
                return
            name, args = "submit", submit_args(bundle, one, breaker.quorum)
        function = self.breaker.functions[name](*args)
        try:
            with self.chain._seam(f"estimating {name} of window {wid}"):  # decodes custom errors
                estimate = int(function.estimate_gas({"from": self.key.address}))
        except ContractRevert as exc:
            self._revert(result, newest, exc)
            return
        gas = int(estimate * self.config.chain.gas_headroom)
        fees = self.lane.market_fees()
        data = self.breaker.encode_abi(name, args=list(args))
        with self.nonce_lock:  # every market's relay signs with the same key: one nonce each, in order
            nonce = self.lane.next_nonce(self.queue.submitted_nonces())
            tx = self.lane.sign({"to": self.breaker.address, "data": data}, nonce, fees, gas)
            # Stored before it is broadcast: after a crash the same bytes are sent again, never a second signature.
            self.queue.record_tx(wid, TxRow(tx.tx_hash, wid, nonce, tx.raw_tx, fees.max_fee, fees.max_priority_fee,
                                            gas, self.clock()), from_state="proved")
            attempt = self.queue.get(wid).attempts
            self.log.info("event=submitting %s windows=%d max_fee=%d priority_fee=%d gas=%d",
                          kv(window=wid, tx=tx.tx_hash, nonce=nonce, attempt=attempt), len(windows), fees.max_fee,
                          fees.max_priority_fee, gas)
            self._broadcast(result, wid, tx.raw_tx, tx.tx_hash)
        result.submitted.extend(w.window_id for w in windows)

    def _attest(self, result: PassResult, wid: int, message: Any, quorum: int) -> Any:
        """The window's attestation with ``quorum`` signatures of attesters registered now, or None: the window
        then stays ``proved`` and is asked for again after a backoff (an attester may be down, lagging behind
        the feed, or refusing; governance may register keys or lower the quorum meanwhile)."""
        from sentinel.relay.attesters import collect

        rounds, next_at = self._attest_retry.get(wid, (0, 0.0))
        if self.clock() < next_at:
            return None
        collected = collect(self.attesters, message, chain_id=self.chain.chain_id,
                            breaker=self.breaker.address, registered=self._registered_attesters(), quorum=quorum,
                            timeout=self.rc.attester_timeout_seconds,
                            on_late=lambda answer: self._record_answer(wid, answer, late=True))
        for answer in collected.answers:
            self._record_answer(wid, answer)
        if collected.complete:
            self._attest_retry.pop(wid, None)
            self.attest_shortfall = None
            self.metrics.attester_shortfall.set(0)
            self.log.info("event=attested %s signers=%s", kv(window=wid),
                          ",".join(sorted(signer for signer, _ in collected.attestation.signatures)))
            return collected.attestation
        wait = self._attest_backoff.wait_after(rounds)
        self._attest_retry[wid] = (rounds + 1, self.clock() + wait)
        self.attest_shortfall = {"window": wid, "rounds": rounds + 1, "retry_in": round(wait, 1),
                                 "detail": collected.shortfall()}
        self.metrics.attester_shortfall.set(1)
        self.log.warning("event=attester_shortfall %s round=%d retry_in=%.1f detail=%r", kv(window=wid), rounds + 1,
                         wait,
                         collected.shortfall())
        result.errors.append(f"window {wid}: {collected.shortfall()}")
        return None

    def _record_answer(self, wid: int, answer: Any, *, late: bool = False) -> None:
        """Count, keep (for /healthz) and log one attester's answer; ``late``: it came after the quorum had signed
        (the window went on without it), from the thread that asked it."""
        self.metrics.attester_requests.labels(attester=answer.attester, outcome=answer.outcome).inc()
        self.metrics.attester_seconds.observe(answer.seconds)
        before = self.attester_answers.get(answer.attester, {}).get("outcome")
        self.attester_answers[answer.attester] = {**answer.to_dict(), "window": wid, "at": self.clock()}
        after = " after_quorum=1" if late else ""
        if answer.outcome == "refused" or answer.outcome not in ("signed", before):
            # every refusal (it names the window's rows); an outage once, when it starts
            self.log.warning("event=attester_%s %s attester=%s detail=%r%s", answer.outcome, kv(window=wid),
                             answer.attester, answer.detail, after)
        elif answer.outcome == "signed" and before not in (None, "signed"):
            self.log.info("event=attester_back %s attester=%s%s", kv(window=wid), answer.attester, after)

    def _revert(self, result: PassResult, window: WindowRow, exc: ContractRevert) -> None:
        """A decoded revert before sending: final for stale/already-reported windows, else retried then failed."""
        wid = window.window_id
        if exc.error in FINAL_REVERTS:
            self._reject(result, wid, f"{exc.error}({', '.join(f'{k}={v}' for k, v in exc.args_.items())})")
            return
        self.log.error("event=revert %s error=%s args=%s", kv(window=wid, attempt=window.attempts), exc.error,
                       exc.args_)
        result.errors.append(str(exc))
        if window.attempts + 1 >= self.rc.max_attempts:
            self.queue.transition(wid, "failed", last_error=str(exc))
        else:
            self.queue.update(wid, count_attempt=True, last_error=str(exc))

    def _broadcast(self, result: PassResult, wid: int, raw_tx: str, tx_hash: str) -> str:
        outcome, message = self.lane.broadcast(raw_tx)
        if outcome in ("sent", "known"):
            self._sent_at[tx_hash] = self.clock()
        else:
            self.log.warning("event=broadcast_refused %s outcome=%s node=%r", kv(window=wid, tx=tx_hash), outcome,
                             message.splitlines()[0] if message else "")
        return outcome

    # -- reconciling ----------------------------------------------------------------------
    def reconcile(self, result: PassResult, head: Any) -> None:
        """Bring every submitted window forward from what the chain says (see module doc)."""
        submitted = self.queue.windows("submitted")
        ours = {t.tx_hash for w in submitted for t in self.queue.txs(w.window_id)}
        self._sent_at = {h: t for h, t in self._sent_at.items() if h in ours}  # finished windows' hashes go
        for window in submitted:
            if window.batch_of in (None, window.window_id):  # a batch's other windows move with its lead
                self._reconcile_one(result, window, head)

    def _reconcile_one(self, result: PassResult, window: WindowRow, head: Any) -> None:
        wid = window.window_id
        txs = self.queue.txs(wid)
        for tx in reversed(txs):
            receipt = self.lane.receipt(tx.tx_hash)
            if receipt is not None:
                self._mined(result, window, tx, receipt, head)
                return
        if window.block_number is not None:
            self.log.warning("event=reorg %s block=%s: receipt gone, sending the same transaction again",
                             kv(window=wid, tx=window.tx_hash), window.block_number)
            self.queue.update(wid, block_number=None, block_hash=None)
        mined_nonce, _ = self.lane.nonces()
        if window.nonce is not None and mined_nonce > window.nonce:
            # Ours may have been mined between the receipt lookups and the nonce read (a node can count
            # the nonce before it serves the receipt): any of our transactions the node still knows means
            # wait for its receipt, not "taken".
            if any(self.lane.known(t.tx_hash) for t in txs):
                return
            self._nonce_taken(result, window, {t.tx_hash for t in txs})
            return
        newest = txs[-1]
        doomed = self._would_revert(window, newest)
        if doomed is None and self._of_other_model(window.bundle):
            # proved with the model before a verifier upgrade (followed by this pass): it would revert with
            # InvalidProof once mined
            if self.lane.sends_privately or self.lane.known(newest.tx_hash) or self._waited_on(window):
                self._cancel(window, newest)
            self._reprove_sent(window, "unmined when the verifier changed")
            return
        if doomed is not None:
            error, final = doomed
            if window.nonce is not None and self.lane.nonces()[0] > window.nonce:
                # Our nonce was used after the receipt lookups above: likely by our own report, landing
                # meanwhile (that is also why the simulation reverts). The next pass finds its receipt, or
                # decides the nonce was taken; rejecting now would disown a report of ours on chain.
                self.log.info("event=nonce_used_meanwhile %s: deciding on the next pass",
                              kv(window=wid, tx=newest.tx_hash, nonce=window.nonce))
                return
            # Someone reported this window first (a copy of our calldata, say) or it went stale: sending,
            # re-sending or bumping it now only pays for a revert. Replace what the node still holds.
            # (a private endpoint may hold ours unseen by the main node: replace it there too, to be sure)
            # Another market's transaction behind this nonce would wait forever for it: fill it even if the
            # node forgot ours.
            if self.lane.sends_privately or self.lane.known(newest.tx_hash) or self._waited_on(window):
                self._cancel(window, newest)
            if error in RESIGN_REVERTS:
                # The quorum or the attester set changed under it: sign the window again as the breaker wants now.
                self.queue.transition(wid, "proved", count_attempt=True, tx_hash=None, nonce=None, block_number=None,
                                      block_hash=None, last_error=f"{final}: signing policy changed; signing anew")
                self.log.warning("event=resign %s reason=%r", kv(window=wid, tx=newest.tx_hash, nonce=window.nonce),
                                 final)
                return
            self._reject(result, wid, f"{final}: dropped unmined, before it could revert on chain (simulated)")
            return
        self._unmined(result, window, newest)

    def _unmined(self, result: PassResult, window: WindowRow, newest: TxRow) -> None:
        """Our newest transaction for ``window`` is not mined: wait, send the same bytes again, or bump.

        Public mempool: a transaction the node no longer knows was dropped (evicted, node restarted, or never
        sent before a crash): the same bytes go again; one it knows is bumped after ``stuck_seconds``. Private
        endpoint: the main node never sees ours before it is mined, so that is no sign of anything. The same
        bytes go to the endpoint again only if this process has not sent them within ``stuck_seconds`` (after
        a restart, a failed send, or while the fee caps stop bumps); resending is idempotent there, and a
        transaction unmined after ``stuck_seconds`` is bumped, which sends the replacement.
        """
        now = self.clock()
        visible = self.lane.known(newest.tx_hash)
        stuck = now - newest.created_at > self.rc.stuck_seconds
        if not self.lane.sends_privately:
            if not visible:
                self._rebroadcast(result, window, newest)
            elif stuck:
                self._bump(window, newest)
            return
        if stuck and self._bump(window, newest):
            return
        last = self._sent_at.get(newest.tx_hash)
        if not visible and (last is None or now - last > self.rc.stuck_seconds):
            self._rebroadcast(result, window, newest)

    def _rebroadcast(self, result: PassResult, window: WindowRow, tx: TxRow) -> None:
        """Send the stored bytes again (never a new signature); bump them if the node wants a higher price."""
        self.metrics.rebroadcasts.inc()
        self.log.info("event=rebroadcast %s", kv(window=window.window_id, tx=tx.tx_hash, nonce=tx.nonce,
                                             attempt=window.attempts, private=self.lane.sends_privately))
        if self._broadcast(result, window.window_id, tx.raw_tx, tx.tx_hash) == UNDERPRICED:
            self._bump(window, tx)

    def _would_revert(self, window: WindowRow, tx: TxRow) -> tuple[str, str] | None:
        """Simulate ``tx``'s call now: (error, description) of a revert it would hit that sending it again
        cannot cure (already reported, stale, or signed under a policy the breaker no longer has), else None."""
        from eth_account.typed_transactions.typed_transaction import TypedTransaction
        from hexbytes import HexBytes

        decoded = TypedTransaction.from_bytes(HexBytes(tx.raw_tx)).as_dict()
        call = {"from": self.key.address, "to": decoded["to"], "data": decoded["data"]}
        try:
            with self.chain._seam(f"simulating the submit of window {window.window_id}"):
                self.chain.w3.eth.call(call)
        except ContractRevert as exc:
            if exc.error in FINAL_REVERTS | RESIGN_REVERTS:
                return exc.error, f"{exc.error}({', '.join(f'{k}={v}' for k, v in exc.args_.items())})"
        return None

    def _waited_on(self, window: WindowRow) -> bool:
        """True if a transaction of another market (one signer, one nonce sequence) waits behind this window's
        nonce: left unused, it would stall every later one."""
        return window.nonce is not None and any(n > window.nonce for n in self.queue.submitted_nonces())

    def _cancel(self, window: WindowRow, old: TxRow) -> None:
        """Replace our pending ``old`` by a plain self-transfer at its nonce (21,000 gas instead of a revert)."""
        fees = replacement_fees(Fees(old.max_fee, old.max_priority_fee), self.lane.market_fees(),
                                self.rc.fee_bump_percent)
        if not within_caps(fees, self.lane.cap, self.lane.priority_cap):
            self.log.error("event=fee_cap %s: cannot outbid the pending transaction to cancel it",
                           kv(window=window.window_id, tx=old.tx_hash))
            return
        tx = self.lane.sign({"to": self.key.address, "data": b"", "value": 0}, old.nonce, fees, 21_000)
        self.log.warning("event=cancel %s replaces=%s", kv(window=window.window_id, tx=tx.tx_hash, nonce=old.nonce),
                         old.tx_hash)
        self._broadcast(PassResult(), window.window_id, tx.raw_tx, tx.tx_hash)

    def _bump(self, window: WindowRow, old: TxRow) -> bool:
        """Replace a stuck transaction: same nonce, same call, both fees up >= fee_bump_percent (False: a cap
        stops it)."""
        market = self.lane.market_fees()
        fees = replacement_fees(Fees(old.max_fee, old.max_priority_fee), market, self.rc.fee_bump_percent)
        if not within_caps(fees, self.lane.cap, self.lane.priority_cap):
            self.log.error("event=fee_cap %s max_fee=%d cap=%d priority_fee=%d priority_cap=%d: not bumping further",
                           kv(window=window.window_id, tx=old.tx_hash), fees.max_fee, self.lane.cap,
                           fees.max_priority_fee,
                           self.lane.priority_cap)
            return False
        from eth_account.typed_transactions.typed_transaction import TypedTransaction
        from hexbytes import HexBytes

        decoded = TypedTransaction.from_bytes(HexBytes(old.raw_tx)).as_dict()
        tx = self.lane.sign({"to": decoded["to"], "data": decoded["data"], "value": decoded.get("value", 0)},
                            old.nonce, fees, old.gas)
        self.queue.record_tx(window.window_id, TxRow(tx.tx_hash, window.window_id, old.nonce, tx.raw_tx, fees.max_fee,
                                                     fees.max_priority_fee, old.gas, self.clock()),
                             from_state="submitted")
        self.metrics.fee_bumps.inc()
        self.log.warning("event=fee_bump %s replaces=%s max_fee=%d priority_fee=%d",
                         kv(window=window.window_id, tx=tx.tx_hash, nonce=old.nonce, attempt=window.attempts),
                         old.tx_hash, fees.max_fee, fees.max_priority_fee)
        self._broadcast(PassResult(), window.window_id, tx.raw_tx, tx.tx_hash)
        return True

    def _reported_by(self, window_id: int) -> set[str]:
        """Hashes of the transactions whose Report event names ``window_id``."""
        reports = self.breaker.events.Report().get_logs(from_block=self.deployment.block,
                                                        argument_filters={"windowId": window_id})
        return {"0x" + bytes(r["transactionHash"]).hex() for r in reports}

    def _nonce_taken(self, result: PassResult, window: WindowRow, ours: set[str]) -> None:
        """Our nonce was used by a transaction that is not ours: sign the window anew (unless it is on chain)."""
        wid = window.window_id
        reporters = self._reported_by(wid)
        if reporters:
            tx = next(iter(reporters))
            if tx in ours:  # ours after all: its receipt will be found on a later pass
                self.log.info("event=report_seen %s: waiting for the receipt", kv(window=wid, tx=tx))
                return
            self._reject(result, wid, f"already reported on chain by tx {tx}, not one of ours")
            return
        if window.attempts >= self.rc.max_attempts:
            self.queue.transition(wid, "failed", last_error=f"nonce {window.nonce} taken by another transaction "
                                                             f"{window.attempts} times")
            return
        # counted, so a key shared with another sender cannot make the relay re-sign forever
        self.queue.transition(wid, "proved", count_attempt=True, tx_hash=None, nonce=None, block_number=None,
                              block_hash=None,
                              last_error=f"nonce {window.nonce} was used by another transaction; none of ours mined")
        self.log.warning("event=nonce_taken %s: signing the window again with a fresh nonce",
                         kv(window=wid, tx=window.tx_hash, nonce=window.nonce, attempt=window.attempts))

    def _reprove_sent(self, window: WindowRow, what: str) -> None:
        """A sent window proved with a model the breaker's verifier no longer is: back to ``new`` (it cannot be
        accepted), proved again with the set in force if still fresh."""
        old = self._model_of(window.bundle, None)
        self.queue.transition(window.window_id, "new", tx_hash=None, nonce=None, block_number=None, block_hash=None,
                              last_error=f"{what}: proved with model {old}, the breaker's verifier is model "
                                         f"{self.model_version} now: proving again")
        self.log.warning("event=prove_again %s from=%s to=%s reason=%r", kv(window=window.window_id, tx=window.tx_hash),
                         old, self.model_version, what)

    def _mined(self, result: PassResult, window: WindowRow, tx: TxRow, receipt: Any, head: Any) -> None:
        from sentinel.chain.breaker import report_events

        wid = window.window_id
        block = int(receipt["blockNumber"])
        block_hash = "0x" + bytes(receipt["blockHash"]).hex()
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        if window.block_number != block or window.block_hash != block_hash or window.tx_hash != tx_hash:
            self.queue.update(wid, block_number=block, block_hash=block_hash, tx_hash=tx_hash,
                              per_window={wid: {"gas_used": int(receipt["gasUsed"])}})
            self.log.info("event=mined %s block=%d gas=%d status=%d", kv(window=wid, tx=tx_hash, nonce=tx.nonce,
                                                                    attempt=window.attempts),
                          block, int(receipt["gasUsed"]), int(receipt["status"]))
        if int(receipt["status"]) != 1:
            last = self._last_on_chain()  # follows a verifier change, if one came first
            if wid <= last:
                self._reject(result, wid, f"reverted on chain (tx {tx_hash}); the breaker's last window is {last}")
            elif self._of_other_model(window.bundle):
                self._reprove_sent(window, f"reverted on chain (tx {tx_hash})")
            else:
                self.queue.transition(wid, "failed", last_error=f"reverted on chain (tx {tx_hash})")
                self.log.error("event=failed %s: reverted on chain", kv(window=wid, tx=tx_hash))
            return
        confirmations = int(head["number"]) - block + 1
        if confirmations < self.rc.confirmations:
            return
        if not self.lane.canonical(block, block_hash):
            self.log.warning("event=reorg %s block=%d: the block is no longer canonical", kv(window=wid, tx=tx_hash),
                             block)
            self.queue.update(wid, block_number=None, block_hash=None)
            return
        ids = [w.window_id for w in self.queue.batch(wid)]
        reports = [args for name, args in report_events(self.breaker, receipt) if name == "Report"]
        if [int(r["windowId"]) for r in reports] != ids:
            self.queue.transition(wid, "failed", last_error=f"tx {tx_hash} mined without the Report events of "
                                                            f"window(s) {ids[0]}-{ids[-1]}")
            return
        from sentinel.chain.encoding import from_wad

        scores = [from_wad(int(r["score"])) for r in reports]
        self.queue.transition(wid, "confirmed", confirmed_at=self.clock(), tx_hash=tx_hash,
                              per_window={int(r["windowId"]): {"tripped": int(bool(r["tripped"]))} for r in reports})
        self.metrics.submit_gas.observe(int(receipt["gasUsed"]))
        self.metrics.last_score.set(scores[-1])
        result.confirmed.extend(ids)
        self.log.info("event=confirmed %s block=%d confirmations=%d score=%.4f tripped=%s%s",
                      kv(window=wid, tx=tx_hash, nonce=tx.nonce, attempt=window.attempts), block, confirmations,
                      scores[-1], bool(reports[-1]["tripped"]), f" windows={ids[0]}-{ids[-1]}" if len(ids) > 1 else "")

    # -- observability ----------------------------------------------------------------------
    def refresh_metrics(self) -> None:
        for state, n in self.queue.counts().items():
            self.metrics.windows.labels(state=state).set(n)
        last = self.queue.last_confirmed()
        if last is not None:
            self.metrics.last_confirmed.set(last.window_id)
            newest = self.feed.newest_unix()
            if newest is not None:
                self.metrics.lag.set(max(0.0, newest - last.end_unix))
        if self.tripped is not None:
            self.metrics.tripped.set(1 if self.tripped else 0)

    def health(self) -> dict[str, Any]:
        """What /healthz answers. It runs in the status server's thread: the queue is read on a read-only
        connection of its own, never the daemon's."""
        reader = Queue.read_only(self.queue.path, market=self.market)
        try:
            last, top, counts = reader.last_confirmed(), reader.max_id(), reader.counts()
        finally:
            reader.close()
        newest = self.feed.newest_unix()
        return {
            "ready": self.ready,
            "last_confirmed_window": last.window_id if last else None,
            "last_confirmed_window_end": last.end_unix if last else None,
            "lag_seconds": (newest - last.end_unix) if (last and newest is not None) else None,
            "lag_windows": (top - last.window_id) if (last and top is not None) else None,
            "windows": counts,
            "breaker_tripped": self.tripped,
            "attesters": dict(self.attester_answers),  # a copy: a late answer may land from another thread
            "attester_shortfall": self.attest_shortfall,
            "last_pass_at": self.last_pass_at,
            "last_error": self.last_error,
            "rpc": self.chain.rpc_status() if self.chain is not None else None,
            "model_version": self.model_version,
            "verifier": self.verifier,
        }


def _version_id(layout: ArtifactLayout) -> str | None:
    """The version id of the artifact set at ``layout`` (None when it holds no trained model)."""
    from sentinel.versions import read_version

    try:
        return read_version(layout, "market").id
    except ModelError:
        return None


def status(queue: Queue, limit: int = 50) -> dict[str, Any]:
    """``relay status``: counts per state, every window accounted for, recent windows, quarantined rows."""
    windows = queue.windows()
    open_states = [w for w in windows if w.state not in FINAL]
    last = queue.last_confirmed()
    return {
        "db": str(queue.path),
        "market": queue.market,
        "counts": queue.counts(),
        "total": len(windows),
        "unfinished": len(open_states),
        "all_accounted": not open_states,
        "last_confirmed": last.to_dict() if last else None,
        "windows": [w.to_dict() for w in windows[-limit:]] if limit else [w.to_dict() for w in windows],
        "transactions": len(queue.all_txs()),
        "quarantined": queue.quarantined(),
    }


class Backoff:
    """Exponential backoff with full jitter between ``initial`` and ``maximum`` seconds."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self.rng = rng or random.Random()  # noqa: S311 - jitter for retry waits, not cryptography

    def next(self) -> float:
        """The wait after one more failure: uniform in [cap/2, cap], cap doubling up to ``maximum``."""
        wait = self.wait_after(self.failures)
        self.failures += 1
        return wait

    def wait_after(self, failures: int) -> float:
        """The wait after ``failures`` earlier failures (this one not counted), without changing the count."""
        cap = min(self.maximum, self.initial * (2 ** failures))
        return self.rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.failures = 0


def run(relay: Relay, stop: threading.Event, *, once: bool = False, max_passes: int | None = None) -> int:
    """Run passes until ``stop`` is set (or once); returns the number of passes."""
    backoff = Backoff(relay.rc.backoff_initial_seconds, relay.rc.backoff_max_seconds)
    passes = 0
    while not stop.is_set():
        passes += 1
        try:
            result = relay.run_once(stop)
            backoff.reset()
            wait = 0.0 if result.busy else relay.rc.interval_seconds
        except ChainUnavailable as exc:
            relay.metrics.rpc_errors.inc()
            relay.ready = False
            relay.last_error = str(exc)
            wait = backoff.next()
            log.warning("event=rpc_down attempt=%d retry_in=%.1f error=%r", backoff.failures, wait, str(exc))
        except (ChainError, RelayError) as exc:
            relay.last_error = str(exc)
            wait = backoff.next()
            log.error("event=pass_failed retry_in=%.1f error=%r", wait, str(exc))
        except SentinelError as exc:  # e.g. a feed whose header is unusable: keep running, say so
            relay.last_error = str(exc)
            wait = relay.rc.interval_seconds
            log.error("event=pass_failed error=%r", str(exc))
        if once or (max_passes is not None and passes >= max_passes):
            break
        stop.wait(wait)
    return passes


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop``: the current step finishes (a proof, a send) and the loop exits."""
    def handler(signum: int, _frame: Any) -> None:
        log.info("event=stopping signal=%s: finishing the current step", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
