"""Several JSON-RPC endpoints behind one web3 provider: each request goes to the first healthy one.

A relay on one node stops reporting when that node is down or falls behind.
:class:`Failover` holds the endpoints in order of preference (``relay.rpc_urls``:
the protocol's own node, then providers) and sends each request to the first
usable one. A transport failure (connection refused or reset, a timeout, HTTP
5xx, 429, 401 or 403, a reply that is not JSON-RPC) marks that endpoint down,
with when and why, and the same request goes to the next one. Only when every
endpoint failed does an error surface, as :class:`~sentinel.errors.ChainUnavailable`
(the relay then backs off as for a single node).

A JSON-RPC error reply (a revert, "nonce too low") is the node's answer: it is
returned as it is and never asked again elsewhere. Failing over is safe because
the only request that changes anything, eth_sendRawTransaction, carries signed
bytes the chain takes at most once: a backup that already has them answers
"already known" or, once mined, "nonce too low", both of which the relay's lane
classifies.

Health checks run inline, before a request, so nothing runs in the background:
every ``recheck_seconds`` the endpoints in service are probed together
(eth_chainId, eth_blockNumber), and a down endpoint is probed again
``recheck_seconds`` after it failed. The chain id must be that of the first
endpoint that answered: an endpoint on another chain is never used (one error
line). An endpoint whose head is ``max_lag_blocks`` or more behind the best head
of the same probe round is skipped as lagging while another one is usable.
When no endpoint is usable, the down ones are probed at once rather than after
their interval, so a lone survivor's return is seen at the next request.

URLs may carry API keys (path, query, user part): only ``scheme://host``
(:func:`~sentinel.config.redact_url`) is logged or shown, and urllib3's debug
lines, which name each request's path, get the path replaced.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from sentinel.config import redact_url
from sentinel.errors import ChainError, ChainUnavailable

log = logging.getLogger("sentinel.chain.failover")

#: Longest wait for a health probe's answer (a hanging endpoint holds up the request that probes it this long).
PROBE_TIMEOUT_SECONDS = 3.0
#: Longest wait for a TCP connection (an endpoint that drops packets fails over after this, not the read timeout).
CONNECT_TIMEOUT_SECONDS = 5.0
#: HTTP statuses that say "this endpoint cannot serve us now" (5xx too): the request goes to the next one.
ENDPOINT_REFUSALS = frozenset({401, 403, 429})
#: What every endpoint failing suggests.
ALL_DOWN_HINT = "check each endpoint of relay.rpc_urls; /healthz lists why each one failed"

#: Endpoint states. ``up`` and ``lagging`` are in service (``lagging`` only when no ``up`` one answers).
UNCHECKED, UP, LAGGING, DOWN, WRONG_CHAIN = "unchecked", "up", "lagging", "down", "wrong_chain"


class _Unusable(Exception):
    """This endpoint failed a request for a reason that is its own, not the request's (the next one is tried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Endpoint:
    """One endpoint's health; :attr:`url` is never shown, :attr:`label` is ``scheme://host``."""

    url: str
    label: str
    state: str = UNCHECKED
    last_error: str | None = None
    down_since: float | None = None  #: out of service (down or lagging) since, by the failover's clock
    checked_at: float | None = None  #: last probe, or the failure that marked it down
    head: int | None = None
    session: Any = None  #: a requests.Session, made on first use


class _PathRedactor(logging.Filter):
    """Replaces secret URL paths in urllib3's debug lines (``"POST /v3/<key> HTTP/1.1" 200``) before any handler
    sees them; installed once on urllib3's connection-pool logger, fed every failover URL's path and query."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(secret in text for secret in self.secrets):
                for secret in sorted(self.secrets, key=len, reverse=True):
                    text = text.replace(secret, "<redacted>")
                record.msg, record.args = text, None
        return True


@functools.cache
def _path_redactor() -> _PathRedactor:
    redactor = _PathRedactor()
    logging.getLogger("urllib3.connectionpool").addFilter(redactor)
    return redactor


def hide_in_logs(url: str) -> None:
    """Keep ``url``'s path and query (where API keys ride) out of urllib3's debug lines (the user part and the
    fragment never reach them)."""
    parts = urlsplit(url)
    for secret in (parts.path if parts.path.strip("/") else "", parts.query):
        if secret:
            _path_redactor().secrets.add(secret)


class Failover:
    """Endpoints in order of preference, with health, failover and probes (see module doc).

    ``send`` is the whole interface web3 needs (:func:`failover_provider` wraps
    it); :meth:`status` is what the relay's /healthz shows. Thread-safe: state
    changes hold a lock, network calls do not.
    """

    def __init__(self, urls: Sequence[str], *, timeout: float, recheck_seconds: float = 15.0,
                 max_lag_blocks: int = 5, probe_timeout: float = PROBE_TIMEOUT_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        if not urls:
            raise ChainError("no JSON-RPC endpoint to fail over between")
        self.endpoints = [Endpoint(url, redact_url(url)) for url in urls]
        self.timeout = timeout
        self.probe_timeout = min(probe_timeout, timeout)
        self.recheck_seconds = recheck_seconds
        self.max_lag_blocks = max_lag_blocks
        self.clock = clock
        self.chain_id: int | None = None  #: of the first endpoint that answered eth_chainId
        self.active: Endpoint | None = None  #: the endpoint that answered the last request
        self._lock = threading.Lock()
        for url in urls:
            hide_in_logs(url)
        log.info("event=rpc_endpoints endpoints=%s recheck=%g max_lag_blocks=%d",
                 ",".join(e.label for e in self.endpoints), recheck_seconds, max_lag_blocks)

    @property
    def label(self) -> str:
        """The active endpoint's ``scheme://host`` (the first one's before any request), for messages."""
        return (self.active or self.endpoints[0]).label

    def status(self) -> list[dict[str, Any]]:
        """Every endpoint in order of preference: endpoint (scheme://host), state, healthy, active, last_error,
        down_since (unix time), head (block number at its last probe)."""
        with self._lock:
            return [{"endpoint": e.label, "state": e.state, "healthy": e.state == UP, "active": e is self.active,
                     "last_error": e.last_error, "down_since": e.down_since, "head": e.head}
                    for e in self.endpoints]

    # -- requests ----------------------------------------------------------------------
    def send(self, method: str, body: bytes) -> dict[str, Any]:
        """The JSON-RPC reply to ``body`` (one request for ``method``) from the first usable endpoint.

        JSON-RPC error replies are returned like results. Raises
        ChainUnavailable naming every endpoint and why it failed when none
        answered, or a ``requests.HTTPError`` for an HTTP status that says the
        request itself is wrong (a 400: no other endpoint would take it either).
        """
        probed = {id(e) for e in self._probe_due()}
        tried: set[int] = set()
        for rescue in (False, True):
            if rescue:  # nothing in service answered: probe the down ones now rather than after their interval
                self._round([e for e in self.endpoints if e.state == DOWN and id(e) not in tried | probed])
            for endpoint in self._in_service():
                if id(endpoint) in tried:
                    continue
                tried.add(id(endpoint))
                try:
                    reply = self._post(endpoint, body, self.timeout)
                except _Unusable as exc:
                    self._mark_down(endpoint, f"{method}: {exc.reason}")
                    continue
                self._served(endpoint)
                return reply
        with self._lock:
            reasons = "; ".join(f"{e.label} {e.state}: {e.last_error}" for e in self.endpoints)
        raise ChainUnavailable(",".join(e.label for e in self.endpoints), f"{method}: no endpoint answered ({reasons})",
                               hint=ALL_DOWN_HINT)

    def _in_service(self) -> list[Endpoint]:
        """Healthy endpoints in order of preference, then lagging ones (better late data than none)."""
        with self._lock:
            return [e for e in self.endpoints if e.state == UP] + [e for e in self.endpoints if e.state == LAGGING]

    def _post(self, endpoint: Endpoint, body: bytes, timeout: float) -> dict[str, Any]:
        """One HTTP exchange; :class:`_Unusable` for a failure of the endpoint (its reason never holds the URL)."""
        import requests

        if endpoint.session is None:
            endpoint.session = requests.Session()
        try:
            response = endpoint.session.post(endpoint.url, data=body, headers={"Content-Type": "application/json"},
                                             timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout), timeout))
            status, content = response.status_code, response.content
        except requests.Timeout:
            raise _Unusable(f"no answer within {timeout:g} s") from None
        except requests.RequestException as exc:  # their text holds the URL: only the type is kept
            raise _Unusable(type(exc).__name__) from None
        if status >= 500 or status in ENDPOINT_REFUSALS:
            raise _Unusable(f"HTTP {status}")
        if status >= 400:
            raise requests.HTTPError(f"{endpoint.label} answered HTTP {status}")
        try:
            reply = json.loads(content)
        except ValueError:
            raise _Unusable("a reply that is not JSON") from None
        if not isinstance(reply, dict) or not ("result" in reply or "error" in reply):
            raise _Unusable("a reply that is not JSON-RPC")
        return reply

    def _served(self, endpoint: Endpoint) -> None:
        with self._lock:
            previous, self.active = self.active, endpoint
        if previous is None or previous is endpoint:
            return
        if self.endpoints.index(endpoint) < self.endpoints.index(previous):
            log.info("event=rpc_failover from=%s to=%s reason=%r", previous.label, endpoint.label,
                     "preferred endpoint back in service")
        else:
            log.warning("event=rpc_failover from=%s to=%s reason=%r", previous.label, endpoint.label,
                        f"{previous.state}: {previous.last_error}")

    # -- health --------------------------------------------------------------------------
    def _probe_due(self) -> list[Endpoint]:
        """Probe the endpoints whose interval is over, with every endpoint in service (heads compare within a
        round): a healthy one every ``recheck_seconds``, a down one ``recheck_seconds`` after it failed.
        Returns the endpoints probed."""
        now = self.clock()
        with self._lock:
            due = any(e.state != WRONG_CHAIN and (e.checked_at is None or now - e.checked_at >= self.recheck_seconds)
                      for e in self.endpoints)
            if not due:
                return []
            round_ = [e for e in self.endpoints if e.state in (UP, LAGGING, UNCHECKED)
                      or (e.state == DOWN and e.checked_at is not None and now - e.checked_at >= self.recheck_seconds)]
        self._round(round_)
        return round_

    def _round(self, endpoints: list[Endpoint]) -> None:
        """Probe ``endpoints`` (in order of preference), then apply the lag rule to the heads just read."""
        heads = {id(e): head for e in endpoints if (head := self._probe(e)) is not None}
        if not heads:
            return
        best = max(heads.values())
        for endpoint in endpoints:
            if id(endpoint) in heads:
                self._place(endpoint, heads[id(endpoint)], best)

    def _probe(self, endpoint: Endpoint) -> int | None:
        """eth_chainId and eth_blockNumber; the head if the endpoint answered both on the right chain, else None
        (and it is marked down, or on the wrong chain for good)."""
        try:
            chain_id = self._ask(endpoint, "eth_chainId")
            head = self._ask(endpoint, "eth_blockNumber")
        except _Unusable as exc:
            self._mark_down(endpoint, f"probe: {exc.reason}")
            return None
        with self._lock:
            endpoint.checked_at = self.clock()
            if self.chain_id is None:
                self.chain_id = chain_id
            expected = self.chain_id
            if chain_id != expected:
                endpoint.state, endpoint.last_error = WRONG_CHAIN, f"chain {chain_id}, expected {expected}"
                endpoint.down_since = endpoint.checked_at
        if chain_id != expected:
            log.error("event=rpc_wrong_chain endpoint=%s chain=%d expected=%d: never used", endpoint.label,
                      chain_id, expected)
            return None
        return head

    def _ask(self, endpoint: Endpoint, method: str) -> int:
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": []}).encode()
        result = self._post(endpoint, body, self.probe_timeout).get("result")
        try:
            return int(str(result), 16)
        except ValueError:
            raise _Unusable(f"{method} gave no number") from None

    def _place(self, endpoint: Endpoint, head: int, best: int) -> None:
        """In service after a probe: up, or lagging if ``max_lag_blocks`` or more behind ``best``."""
        behind = best - head
        with self._lock:
            was, since = endpoint.state, endpoint.down_since
            endpoint.head = head
            if behind >= self.max_lag_blocks:
                endpoint.state, endpoint.last_error = LAGGING, f"{behind} blocks behind (head {head}, best {best})"
                endpoint.down_since = since if since is not None else endpoint.checked_at
            else:
                endpoint.state, endpoint.down_since = UP, None
        if endpoint.state == LAGGING and was != LAGGING:
            log.warning("event=rpc_lagging endpoint=%s head=%d best=%d behind=%d", endpoint.label, head, best, behind)
        elif endpoint.state == UP and was in (DOWN, LAGGING):
            out = f"{endpoint.checked_at - since:.0f}" if since is not None and endpoint.checked_at else "-"
            log.info("event=rpc_recovered endpoint=%s was=%s out_seconds=%s head=%d", endpoint.label, was, out, head)

    def _mark_down(self, endpoint: Endpoint, reason: str) -> None:
        now = self.clock()
        with self._lock:
            was = endpoint.state
            endpoint.state, endpoint.last_error, endpoint.checked_at = DOWN, reason, now
            if endpoint.down_since is None:
                endpoint.down_since = now
            active = endpoint is self.active
        if was != DOWN and not active:  # the active one's fall is told by the rpc_failover line that follows
            log.warning("event=rpc_endpoint_down endpoint=%s reason=%r", endpoint.label, reason)


@functools.cache
def _provider_class() -> type[Any]:
    """web3's side of a :class:`Failover` (made on first use: web3 is imported inside functions only)."""
    from web3.providers.base import JSONBaseProvider
    from web3.types import RPCEndpoint, RPCResponse

    class FailoverProvider(JSONBaseProvider):
        """A web3 provider that sends each request through a :class:`Failover` (no retries of its own: the next
        endpoint is the retry, and the relay backs off when all failed)."""

        logger = log

        def __init__(self, failover: Failover) -> None:
            super().__init__()
            self.failover = failover

        def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
            return cast(RPCResponse, self.failover.send(str(method), self.encode_rpc_request(method, params)))

        def is_connected(self, show_traceback: bool = False) -> bool:  # noqa: FBT001, FBT002 - web3's signature
            try:
                return super().is_connected(show_traceback)
            except ChainUnavailable:
                if show_traceback:
                    raise
                return False

        def status(self) -> list[dict[str, Any]]:
            """Every endpoint's health, for /healthz (see :meth:`Failover.status`)."""
            return self.failover.status()

    return FailoverProvider


def failover_provider(failover: Failover) -> Any:
    """A web3 provider over ``failover``'s endpoints."""
    return _provider_class()(failover)
