"""One attester party's decision, without HTTP: check a request in order, recompute the hash, sign at most once.

A request names (chain id, breaker, window id, window end, input hash). The
attester signs its EIP-712 attestation only if, in this order:

1. the chain and breaker are the ones it serves (a signature is good for one breaker on one chain);
2. the window id is the end's id at the model's cadence (the breaker's rule, so no id can be pushed ahead); the
   model is the one whose verifier the breaker calls at its node's latest block (see "The model in force");
3. the window is fresh by the reference clock (its own node's latest block, else the wall clock): not
   older than ``max_age_seconds``, not more than the breaker's 300 s future skew ahead;
4. it has not signed another end or hash for this window (the record; the same ones get the stored signature);
5. its own copy of the feed holds the window: ``window`` validated rows of one segment ending at that end;
6. the Poseidon hash the circuit computes from those rows (EZKL witness generation) is the requested one;
7. then it signs, checks the signature recovers to its address, and commits the record before answering.

Each refusal is a status and one line saying why; see docs/attester.md.

The model in force: the input hash depends on the circuit's input scale (rows are quantised before hashing),
so a hash is only meaningful for one model. With its own node (``attester.rpc_url``) the attester hashes each
request with the artifact set whose verifier code the breaker calls at the node's latest block (read per
request, the set matched by code among those Sentinel knows: :mod:`sentinel.in_force`), and checks the
window id at that set's cadence; a verifier of no known set is a 503 ``unknown_model``. Without a node it
cannot see an upgrade: it keeps its configured set and says so at start and in ``/healthz``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sentinel.artifacts import ArtifactLayout
from sentinel.attester.node import Node
from sentinel.attester.record import SignedWindow, SigningRecord
from sentinel.chain.encoding import AttestationMessage
from sentinel.chain.keys import Key
from sentinel.config import SentinelConfig
from sentinel.data.feed import Feed, FeedRow, reference_time, utc_text
from sentinel.data.windows import FUTURE_SKEW_SECONDS
from sentinel.data.windows import window_id as window_id_of
from sentinel.errors import (
    AlreadySigned,
    AttesterError,
    ChainError,
    CircuitError,
    DataValidationError,
    ModelError,
    SentinelError,
    SigningKeyError,
)
from sentinel.zk.instances import BN254_R

log = logging.getLogger("sentinel.attester")

#: The request body's fields and their JSON types (exactly these, nothing else).
FIELDS: dict[str, type] = {"chain_id": int, "breaker": str, "window_id": int, "window_end": int, "input_hash": str}
_UINT64 = 1 << 64
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH = re.compile(r"0x[0-9a-fA-F]{1,64}")


class Answer(NamedTuple):
    """What the attester answers: an HTTP status, a JSON payload and a short reason (a metrics label)."""

    status: int
    payload: dict[str, Any]
    reason: str  #: "signed" (new), "repeat" (the stored signature) or why it was refused


class Refusal(Exception):
    """A request the attester will not sign (raised inside :meth:`Attester.attest`, answered, never escaping)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(message)

    def answer(self) -> Answer:
        return Answer(self.status, {"error": self.message}, self.reason)


@dataclass(frozen=True)
class AttestRequest:
    """A parsed request."""

    chain_id: int
    breaker: str  #: as sent (compared case-insensitively)
    window_id: int
    window_end: int
    input_hash: int

    @property
    def message(self) -> AttestationMessage:
        return AttestationMessage(self.window_id, self.window_end, self.input_hash)


def _malformed(field: str, problem: str) -> Refusal:
    return Refusal(422, "malformed", f"malformed request: field '{field[:40]}' {problem}")


def parse_request(body: Any) -> AttestRequest:
    """The request in a decoded JSON body, or a 422 :class:`Refusal` naming the first bad field."""
    if not isinstance(body, dict):
        raise Refusal(422, "malformed", f"malformed request: the body must be a JSON object, not {_kind(body)}")
    for name in body:
        if name not in FIELDS:
            raise _malformed(str(name), f"is not one of {', '.join(FIELDS)}")
    for name, kind in FIELDS.items():
        if name not in body:
            raise _malformed(name, "is missing")
        value = body[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _malformed(name, f"must be a JSON {'integer' if kind is int else 'string'}, not {_kind(value)}")
        if isinstance(value, int) and not 0 <= value < _UINT64:
            raise _malformed(name, f"must be in 0..2^64-1, got {value}")
    if not _ADDRESS.fullmatch(body["breaker"]):
        raise _malformed("breaker", "must be a 0x-prefixed 20-byte hex address")
    if not _HASH.fullmatch(body["input_hash"]):
        raise _malformed("input_hash", "must be 0x-prefixed hex of at most 32 bytes")
    input_hash = int(body["input_hash"], 16)
    if input_hash >= BN254_R:
        raise _malformed("input_hash", "must be below the BN254 scalar field modulus (it is a Poseidon hash)")
    return AttestRequest(body["chain_id"], body["breaker"], body["window_id"], body["window_end"], input_hash)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Target:
    """The one breaker on one chain this attester signs for."""

    chain_id: int
    breaker: str  #: checksummed


def served_target(layout: ArtifactLayout, config: SentinelConfig, market: str | None = None) -> Target:
    """``attester.chain_id`` and ``attester.breaker``, each unset one from the project's deployment record (of
    ``market``'s breaker; without one, the only or the default market's)."""
    from eth_utils.address import to_checksum_address

    chain_id, breaker = config.attester.chain_id, config.attester.breaker
    if not chain_id or not breaker:
        from sentinel.chain.breaker import BREAKER
        from sentinel.chain.deploy import load_deployment

        deployment = load_deployment(layout, market)
        chain_id = chain_id or deployment.chain_id
        breaker = breaker or deployment.address(BREAKER)
    return Target(chain_id, to_checksum_address(breaker))


def _kv(**fields: Any) -> str:
    return " ".join(f"{k}={'-' if v is None else v}" for k, v in fields.items())


class Attester:
    """One attester party: its key, its feed, its node (optional) and its signing record.

    Thread-safe: :meth:`attest` runs one request at a time (EZKL's witness
    generation holds the GIL anyway); :meth:`poll_feed` and :meth:`health`
    may be called from other threads.
    """

    def __init__(self, layout: ArtifactLayout, config: SentinelConfig, key: Key, *, target: Target | None = None,
                 artifacts: ArtifactLayout | None = None, clock: Callable[[], float] = time.time) -> None:
        """``layout`` is the project (deployment, feed and record paths); ``artifacts`` the market's configured model
        and circuit, whose input hash it recomputes until its node shows the breaker runs another (default: the
        project's)."""
        from sentinel.zk.manifest import load_manifest

        self.layout = layout
        self.config = config
        #: the market's configured set; the set in force (``artifacts``) is the breaker's verifier's when followed
        self.configured = artifacts or layout
        self.artifacts = self.configured
        self.ac = config.attester
        self.key = key
        self.clock = clock
        self.target = target or served_target(layout, config)
        manifest = load_manifest(self.artifacts)
        self.window, self.cadence = int(manifest["window"]), float(manifest["cadence_seconds"])
        if not self.artifacts.compiled_circuit.exists():
            raise CircuitError(f"{self.artifacts.compiled_circuit}: no compiled circuit to recompute input hashes with",
                               hint="run `sentinel circuit build`")
        self.model_version: str | None = _version_id(self.configured)  #: the set in force's id
        self.verifier: str | None = None  #: the breaker's verifier the set was matched to (None: not followed yet)
        self.model_error: str | None = None  #: why no set could be matched to the breaker's verifier (unknown code)
        self.feed_path = layout.feed(self.ac.feed or config.data.feed)
        self.node = Node(self.ac.rpc_url) if self.ac.rpc_url else None
        self._node_time: float | None = None
        self.node_ok = self.node is None
        self.feed_ok = False
        self.feed_error: str | None = None
        self.quarantined = 0
        self.last_hash_seconds: float | None = None  #: how long the last circuit_input_hash took
        self._hash_seconds: float | None = None  #: the same, for the request being decided (None: not computed)
        self._attest_lock = threading.Lock()
        self._feed_lock = threading.Lock()
        if self.node is not None:
            self._check_node(self.node)
        else:
            log.warning("event=not_following %s: without a node (attester.rpc_url) this attester cannot see a verifier "
                        "upgrade; it hashes with its configured model only", _kv(version=self.model_version))
        self.feed = Feed(self.feed_path, config.data, self.cadence, self.window, self.ac.keep_rows,
                         clock=self._feed_clock, future_skew=FUTURE_SKEW_SECONDS)
        self.record = SigningRecord(layout.root / Path(self.ac.record).expanduser() if self.ac.record
                                    else layout.attester_record, clock=clock)
        others = [s for s in self.record.signers() if s != key.address]
        if others:
            self.record.close()
            raise AttesterError(f"{self.record.path}: the signing record holds signatures by {', '.join(others)}, "
                                f"this attester signs as {key.address}",
                                hint="one record per key: pass --record for this key's own")

    def close(self) -> None:
        self.record.close()

    # -- the node and the clocks --------------------------------------------------------
    def _check_node(self, node: Node) -> None:
        """At start-up: the node is on the served chain and the breaker has code there; warn if this key is not
        one of its attesters (it may be added later, so that does not stop the service)."""
        got = node.chain_id()
        if got != self.target.chain_id:
            raise AttesterError(f"{node.label} is chain {got}, this attester signs for chain {self.target.chain_id}",
                                hint="pass the node of the served chain with --rpc")
        if not node.has_code(self.target.breaker):
            raise AttesterError(f"{node.label}: no contract at the breaker address {self.target.breaker} on chain "
                                f"{got}", hint="check attester.breaker or the deployment record")
        self._node_time, self.node_ok = float(node.block_time()), True
        try:
            self._follow(node)
        except Refusal as refusal:  # a set may be added before the first request: serve, and refuse until then
            log.warning("event=unknown_model error=%r", refusal.message)
        try:
            registered = node.attesters(self.target.breaker)
        except ChainError as exc:
            log.warning("event=attesters_unreadable %s error=%r", _kv(breaker=self.target.breaker), str(exc))
            return
        if self.key.address not in registered:
            log.warning("event=not_registered %s: the breaker does not count this signer's attestations until "
                        "governance adds it", _kv(signer=self.key.address, breaker=self.target.breaker,
                                                 attesters=len(registered)))

    def _follow(self, node: Node) -> None:
        """Match the artifact set to the verifier the breaker calls at the node's latest block; a 503 Refusal when
        the node cannot say or no set Sentinel knows has that verifier's code."""
        from sentinel.in_force import UnknownModel, candidate_sets, in_force

        try:
            verifier = node.verifier(self.target.breaker)
            if verifier == self.verifier:
                return
            code = node.code(verifier)
        except ChainError as exc:
            self.node_ok = False
            raise Refusal(503, "node_down", f"cannot read the breaker's verifier: {exc}") from None
        try:
            version = in_force(candidate_sets(self.config, self.layout, self.configured), verifier, code)
        except UnknownModel as exc:
            self.model_error = str(exc)
            raise Refusal(503, "unknown_model", str(exc)) from None
        self.model_error = None
        before, self.verifier = self.model_version, verifier
        if version.id != before:
            self._use(self.configured if version.id == _version_id(self.configured) else version.layout)
            self.model_version = version.id
            log.warning("event=model_switched %s", _kv(**{"from": before}, to=version.id, verifier=verifier,
                                                        window=self.window, cadence=f"{self.cadence:g}"))
        else:
            log.info("event=model_in_force %s", _kv(version=version.id, verifier=verifier))

    def _use(self, artifacts: ArtifactLayout) -> None:
        """Hash and check window ids with the set at ``artifacts`` (its manifest's window and cadence; the feed
        is read again from the start when they differ from the current set's)."""
        from sentinel.zk.manifest import load_manifest

        manifest = load_manifest(artifacts)
        window, cadence = int(manifest["window"]), float(manifest["cadence_seconds"])
        if not artifacts.compiled_circuit.exists():
            raise Refusal(503, "unknown_model", f"{artifacts.compiled_circuit}: the model in force has no compiled "
                                                "circuit to recompute input hashes with")
        self.artifacts = artifacts
        if (window, cadence) != (self.window, self.cadence):
            self.window, self.cadence = window, cadence
            feed = getattr(self, "feed", None)
            if feed is not None:
                with self._feed_lock:
                    self.feed = Feed(feed.path, feed.data, cadence, window, self.ac.keep_rows, clock=self._feed_clock,
                                     future_skew=FUTURE_SKEW_SECONDS)

    def reference_time(self) -> tuple[float, str]:
        """(Unix seconds, what they are): the node's latest block time, read now, else the wall clock."""
        if self.node is None:
            return float(self.clock()), "wall clock"
        try:
            self._node_time = float(self.node.block_time())
        except ChainError:
            self.node_ok = False
            raise
        self.node_ok = True
        return self._node_time, "latest block"

    def _feed_clock(self) -> float:
        """Reference for the feed's future-skew quarantine (:func:`sentinel.data.feed.reference_time`)."""
        return reference_time(self.clock(), self._node_time)

    # -- the feed -----------------------------------------------------------------------
    def poll_feed(self) -> None:
        """Read the feed's new complete rows (quarantining bad ones, each logged once); raises if it is unreadable."""
        with self._feed_lock:
            try:
                result = self.feed.poll()
            except SentinelError as exc:
                self.feed_ok = False
                if str(exc) != self.feed_error:
                    log.error("event=feed_error error=%r", str(exc))
                self.feed_error = str(exc)
                raise
            self.feed_ok, self.feed_error = True, None
            for bad in result.bad:
                self.quarantined += 1
                log.warning("event=quarantined %s", bad.describe())

    def follow(self, stop: threading.Event) -> None:
        """Poll the feed (and the node's clock and the breaker's verifier) every ``attester.poll_seconds`` until
        ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(SentinelError):  # logged once by poll_feed; /healthz says not ready
                self.poll_feed()
            if self.node is not None:
                was_ok = self.node_ok
                try:
                    self.reference_time()
                except ChainError as exc:
                    if was_ok:
                        log.warning("event=node_down error=%r", str(exc))
                else:
                    if not was_ok:
                        log.info("event=node_up node=%s", self.node.label)
                    with self._attest_lock, contextlib.suppress(Refusal):  # a request says why, when one comes
                        self._follow(self.node)  # /healthz shows an upgrade before the first request after it
            stop.wait(self.ac.poll_seconds)

    # -- attest -------------------------------------------------------------------------
    def attest(self, body: Any) -> Answer:
        """Decide on one decoded JSON request body; logs one line with the decision."""
        request: AttestRequest | None = None
        hash_seconds: float | None = None
        try:
            request = parse_request(body)
            with self._attest_lock:
                self._hash_seconds = None
                try:
                    answer = self._attest(request)
                finally:
                    hash_seconds = self._hash_seconds
        except Refusal as refusal:
            answer = refusal.answer()
        except SentinelError as exc:  # the record, the key: the service's fault, not the request's
            answer = Answer(500, {"error": f"internal error: {exc}"}, "internal")
        timing = f"{hash_seconds:.3f}" if hash_seconds is not None else None
        if answer.status == 200 and request is not None:
            log.info("event=signed %s", _kv(window=request.window_id, end=request.window_end,
                                            hash=f"0x{request.input_hash:064x}", stored=answer.reason,
                                            hash_seconds=timing))
        else:
            log.info("event=refused %s error=%r", _kv(
                reason=answer.reason, status=answer.status, window=request.window_id if request else None,
                hash_seconds=timing), answer.payload["error"])
        return answer

    def _attest(self, request: AttestRequest) -> Answer:
        target = self.target
        if request.chain_id != target.chain_id:
            raise Refusal(422, "wrong_chain", f"wrong chain: this attester signs for chain {target.chain_id}, not "
                                              f"{request.chain_id}")
        if request.breaker.lower() != target.breaker.lower():
            raise Refusal(422, "unknown_breaker", f"unknown breaker {request.breaker}: this attester signs for "
                                                  f"{target.breaker} only")
        if self.node is not None:
            self._follow(self.node)  # the model whose verifier the breaker calls now: its cadence, its input scale
        self._check_window_id(request)
        self._check_fresh(request)
        stored = self.record.get(target.chain_id, target.breaker, request.window_id)
        if stored is not None:
            return self._stored(request, stored)
        rows = self._own_rows(request)
        self._check_hash(request, rows)
        try:
            row, new = self.record.sign_once(target.chain_id, target.breaker, request.window_id, request.window_end,
                                             request.input_hash, lambda: self._sign(request.message))
        except AlreadySigned as exc:  # another process on the same record signed meanwhile
            message = str(AlreadySigned(exc.window_id, target.breaker, exc.window_end, exc.input_hash))
            raise Refusal(409, "equivocation", message) from None
        return Answer(200, {"signer": row.signer, "signature": "0x" + row.signature.hex()},
                      "signed" if new else "repeat")

    def _check_window_id(self, request: AttestRequest) -> None:
        expected = window_id_of(request.window_end, self.cadence)
        if request.window_id != expected:
            raise Refusal(422, "window_id", f"window id {request.window_id} does not match window end "
                                            f"{request.window_end}: at the model's {self.cadence:g} s cadence that "
                                            f"end is window {expected}")

    def _check_fresh(self, request: AttestRequest) -> None:
        try:
            now, source = self.reference_time()
        except ChainError as exc:
            raise Refusal(503, "node_down", f"cannot read the reference clock: {exc}") from None
        end, wid, max_age = request.window_end, request.window_id, self.ac.max_age_seconds
        if end < now - max_age:
            raise Refusal(422, "stale", f"window {wid} is stale: it ended at {utc_text(end)}, {now - end:.0f} s "
                                        f"before the {source} ({utc_text(now)}); the limit is {max_age} s")
        if end > now + FUTURE_SKEW_SECONDS:
            raise Refusal(422, "future", f"window {wid} ends at {utc_text(end)}, {end - now:.0f} s after the {source} "
                                         f"({utc_text(now)}): more than the breaker's {FUTURE_SKEW_SECONDS} s skew")

    def _stored(self, request: AttestRequest, stored: SignedWindow) -> Answer:
        if (stored.window_end, stored.input_hash) != (request.window_end, request.input_hash):
            message = str(AlreadySigned(request.window_id, self.target.breaker, stored.window_end,
                                        stored.input_hash))
            raise Refusal(409, "equivocation", message)
        return Answer(200, {"signer": stored.signer, "signature": "0x" + stored.signature.hex()}, "repeat")

    def _own_rows(self, request: AttestRequest) -> tuple[list[FeedRow], Any]:
        """This party's rows of the window and their validated MarketData, or a 422 saying why there are none."""
        try:
            self.poll_feed()
        except SentinelError as exc:
            raise Refusal(503, "feed_error", f"cannot read its feed: {exc}") from None
        with self._feed_lock:
            rows = self.feed.window_rows(request.window_id)
            if rows is None or math.floor(rows[-1].unix) != request.window_end:
                raise self._absent(request, list(self.feed.rows))
            try:
                market = self.feed.market_for(request.window_id)
            except DataValidationError as exc:
                raise Refusal(422, "invalid_window", f"its rows of window {request.window_id} "
                                                     f"({_where(rows)}) fail validation: {exc}") from None
        if market is None:  # the rows were there a moment ago: the lock makes this unreachable
            raise Refusal(422, "no_window", f"no complete window {request.window_id} in its feed")
        return rows, market

    def _absent(self, request: AttestRequest, rows: list[FeedRow]) -> Refusal:
        """Why the feed holds no window ending at the request's end."""
        wid, end = request.window_id, request.window_end
        if not rows or math.floor(rows[-1].unix) < end:
            held = f"newest row ends {utc_text(rows[-1].unix)}" if rows else "it holds no rows yet"
            return Refusal(422, "not_in_feed", f"window {wid} (ending {utc_text(end)}) is not yet in its feed "
                                               f"({held})")
        if end < math.floor(rows[0].unix):
            why = (f"it ends before the oldest row still held ({utc_text(rows[0].unix)}; attester.keep_rows "
                   f"{self.ac.keep_rows})")
        else:
            same = [i for i, r in enumerate(rows) if window_id_of(math.floor(r.unix), self.cadence) == wid]
            if not same:
                why = f"no row of its feed falls in it (a gap in the feed around {utc_text(end)})"
            elif math.floor(rows[same[-1]].unix) != end:
                last = rows[same[-1]]
                why = f"its window {wid} ends at {utc_text(last.unix)} ({last.source} line {last.line}) instead"
            elif same[-1] < self.window - 1:
                why = f"fewer than {self.window} rows are held up to its end"
            else:
                why = (f"its {self.window} rows ({_where(rows[same[-1] - self.window + 1: same[-1] + 1])}) span a "
                       "gap or a quarantined row")
        return Refusal(422, "no_window", f"no complete window {wid} ending {utc_text(end)} in its feed: {why}")

    def _check_hash(self, request: AttestRequest, own: tuple[list[FeedRow], Any]) -> None:
        from sentinel.zk.witness_check import circuit_input_hash

        rows, market = own
        started = time.perf_counter()
        try:
            computed = circuit_input_hash(self.artifacts.compiled_circuit, market.features())
        except CircuitError as exc:
            raise Refusal(500, "hash_failed", f"cannot recompute the input hash of window {request.window_id}: "
                                              f"{exc}") from None
        self._hash_seconds = self.last_hash_seconds = time.perf_counter() - started
        if computed != request.input_hash:
            raise Refusal(409, "hash_mismatch",
                          f"input hash 0x{request.input_hash:064x} is not the hash of its own rows of window "
                          f"{request.window_id}: {_where(rows)} (ending {utc_text(rows[-1].unix)}) hash to "
                          f"0x{computed:064x}; refusing to sign")

    def _sign(self, message: AttestationMessage) -> tuple[str, bytes]:
        from sentinel.chain import eip712

        signer, signature = eip712.sign(self.key.secret, self.target.chain_id, self.target.breaker, message)
        if signer != self.key.address or eip712.recover(signature, self.target.chain_id, self.target.breaker,
                                                        message) != signer:
            raise SigningKeyError(f"the signature of {self.key.address} does not recover to it")
        return signer, signature

    # -- status -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """What /healthz answers (without the request counts, which the server adds)."""
        now = self._node_time if self.node is not None else float(self.clock())
        with self._feed_lock:
            newest = self.feed.newest_unix()
        last = self.record.last()
        return {
            "ready": self.feed_ok and self.node_ok and self.model_error is None,
            "signer": self.key.address,
            "model_version": self.model_version,
            "verifier": self.verifier,
            "follows_upgrades": self.node is not None,
            "model_error": self.model_error,
            "chain_id": self.target.chain_id,
            "breaker": self.target.breaker,
            "feed": str(self.feed_path),
            "feed_error": self.feed_error,
            "quarantined_rows": self.quarantined,
            "newest_row_end": math.floor(newest) if newest is not None else None,
            "feed_lag_seconds": (now - newest) if (now is not None and newest is not None) else None,
            "reference": "latest block" if self.node is not None else "wall clock",
            "reference_time": now,
            "node": self.node.label if self.node is not None else None,
            "node_ok": self.node_ok,
            "last_signed_window": last.window_id if last else None,
            "last_signed_at": last.signed_at if last else None,
            "signed_windows": self.record.count(),
            "last_hash_seconds": self.last_hash_seconds,
            "record": str(self.record.path),
        }


def _version_id(layout: ArtifactLayout) -> str | None:
    """The version id of the artifact set at ``layout`` (None when it holds no trained model)."""
    from sentinel.versions import read_version

    try:
        return read_version(layout, "configured").id
    except ModelError:
        return None


def _where(rows: list[FeedRow]) -> str:
    """``FILE lines A..B`` (or ``FILE1 line A .. FILE2 line B`` across rotated files)."""
    first, last = rows[0], rows[-1]
    if first.source == last.source:
        return f"{first.source} lines {first.line}..{last.line}"
    return f"{first.source} line {first.line} .. {last.source} line {last.line}"
