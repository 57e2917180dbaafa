"""The attester's HTTP face: Starlette on uvicorn. ``POST /v1/attest``, ``GET /healthz``, ``GET /metrics``.

Before a request reaches :meth:`Attester.attest` it passes a per-client-address
token bucket (429 with ``Retry-After``), a body cap checked on the declared
``Content-Length`` and on the bytes actually read (413), and JSON decoding
(422; duplicate keys count as malformed). uvicorn runs with a connection cap,
a short keep-alive, no access log and no ``Server`` header. SIGTERM and SIGINT
stop it gracefully; the command then exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sentinel.errors import AttesterError, SentinelError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

    from sentinel.attester.service import Answer, Attester
    from sentinel.config import AttesterConfig

log = logging.getLogger("sentinel.attester")

#: Connections (open at once) beyond which uvicorn answers 503 at once.
LIMIT_CONCURRENCY = 32
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_SECONDS = 2
#: Seconds SIGTERM waits for requests in flight (a hash takes about a second) before closing.
GRACEFUL_SECONDS = 10


class RateLimiter:
    """A token bucket per client address: ``rate`` requests a second on average, ``burst`` at once.

    Buckets of clients idle long enough to be full again are forgotten once more than ``max_clients``
    are held, so many addresses cannot grow it without bound.
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  #: client -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one token of ``client``'s bucket: 0.0 if it had one, else the seconds until it will."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_clients:
                    self._forget(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        full = (self.burst - 1.0) / self.rate  # idle this long, a bucket is as good as new
        self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < full}
        while len(self._buckets) > self.max_clients:  # all busy: drop the longest idle
            del self._buckets[min(self._buckets, key=lambda c: self._buckets[c][1])]


class AttesterMetrics:
    """The attester's Prometheus metrics (in their own registry) and the plain counts /healthz shows."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.signed = Counter("sentinel_attester_signed", "Windows signed (a new signature, committed to the record)",
                              registry=r)
        self.repeated = Counter("sentinel_attester_repeated", "Requests answered with a signature already given",
                                registry=r)
        self.refused = Counter("sentinel_attester_refused", "Requests refused, by reason", ["reason"], registry=r)
        self.request_seconds = Histogram("sentinel_attester_request_seconds", "Seconds to answer POST /v1/attest",
                                         registry=r, buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
        self.feed_lag = Gauge("sentinel_attester_feed_lag_seconds",
                              "Reference time minus the newest feed row's time", registry=r)
        self.last_signed = Gauge("sentinel_attester_last_signed_window", "Id of the last window signed", registry=r)
        self.model = Gauge("sentinel_attester_model", "1 for the model version whose circuit hashes the requests (the "
                           "one whose verifier the breaker calls, when the attester has a node)", ["version"],
                           registry=r)
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def observe(self, reason: str, seconds: float | None = None) -> None:
        """Count one answer (``signed``, ``repeat`` or a refusal's reason) and its time."""
        with self._lock:
            self.counts[reason] = self.counts.get(reason, 0) + 1
        if reason == "signed":
            self.signed.inc()
        elif reason == "repeat":
            self.repeated.inc()
        else:
            self.refused.labels(reason=reason).inc()
        if seconds is not None:
            self.request_seconds.observe(seconds)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))

    def render(self, health: dict[str, Any]) -> bytes:
        from prometheus_client import generate_latest

        if health.get("feed_lag_seconds") is not None:
            self.feed_lag.set(health["feed_lag_seconds"])
        if health.get("last_signed_window") is not None:
            self.last_signed.set(health["last_signed_window"])
        self.model.clear()
        if health.get("model_version"):
            self.model.labels(version=health["model_version"]).set(1)
        return generate_latest(self.registry)


class BodyTooLarge(Exception):
    """The request body is over the limit (answered 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (:class:`BodyTooLarge`) as soon as the declared or the read length passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"duplicate key '{key[:40]}'")
    return dict(pairs)


def create_app(attester: Attester, metrics: AttesterMetrics, limiter: RateLimiter, max_body_bytes: int) -> Starlette:
    """The ASGI application."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from sentinel.attester.service import Answer

    def refused(answer: Answer, started: float, headers: dict[str, str] | None = None) -> Response:
        metrics.observe(answer.reason, time.perf_counter() - started)
        level = logging.DEBUG if answer.reason == "rate_limited" else logging.INFO  # a flood must not fill the log
        log.log(level, "event=refused reason=%s status=%d window=- error=%r", answer.reason, answer.status,
                answer.payload["error"])
        return JSONResponse(answer.payload, answer.status, headers=headers)

    def rate_limited(request: Request, started: float) -> Response | None:
        client = request.client.host if request.client else "-"
        wait = limiter.take(client)
        if wait <= 0:
            return None
        seconds = max(1, math.ceil(wait))
        answer = Answer(429, {"error": f"rate limit: more than {limiter.rate:g} requests a second from {client}; "
                                       f"retry in {seconds} s"}, "rate_limited")
        return refused(answer, started, {"Retry-After": str(seconds)})

    async def attest(request: Request) -> Response:
        started = time.perf_counter()
        if (limited := rate_limited(request, started)) is not None:
            return limited
        try:
            raw = await read_body(request, max_body_bytes)
        except BodyTooLarge:
            return refused(Answer(413, {"error": f"request body over {max_body_bytes} bytes"}, "too_large"), started)
        try:
            body = json.loads(raw, object_pairs_hook=_no_duplicates)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return refused(Answer(422, {"error": f"the body is not JSON: {str(exc)[:120]}"}, "not_json"), started)
        answer = await run_in_threadpool(attester.attest, body)
        metrics.observe(answer.reason, time.perf_counter() - started)
        return JSONResponse(answer.payload, answer.status)

    async def healthz(request: Request) -> Response:
        if (limited := rate_limited(request, time.perf_counter())) is not None:
            return limited
        payload = {**attester.health(), "counts": metrics.snapshot()}
        return JSONResponse(payload, 200 if payload["ready"] else 503)

    async def prometheus(request: Request) -> Response:
        if (limited := rate_limited(request, time.perf_counter())) is not None:
            return limited
        return Response(metrics.render(attester.health()), 200, media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/v1/attest", attest, methods=["POST"]), Route("/healthz", healthz),
                             Route("/metrics", prometheus)])


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), or one line saying why not (port in use, no such address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise AttesterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                            hint="pick another port with --port or SENTINEL_ATTESTER__PORT") from None
    return sock


def serve(attester: Attester, ac: AttesterConfig, *, started: float | None = None) -> None:
    """Serve until SIGTERM or SIGINT, following the feed in a background thread; closes ``attester``."""
    import uvicorn

    try:
        sock = listen(ac.host, ac.port)
    except AttesterError:
        attester.close()
        raise
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()  # before uvicorn takes over the signals, and after it hands them back

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    class Server(uvicorn.Server):
        async def on_tick(self, counter: int) -> bool:
            return stop.is_set() or await super().on_tick(counter)

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start-up lines are not ours; errors are
    metrics = AttesterMetrics()
    app = create_app(attester, metrics, RateLimiter(ac.rate_per_second, ac.rate_burst), ac.max_body_bytes)
    server = Server(uvicorn.Config(
        app, limit_concurrency=LIMIT_CONCURRENCY, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SECONDS, access_log=False, server_header=False, proxy_headers=False,
        log_config=None, lifespan="off"))
    follower = threading.Thread(target=attester.follow, args=(stop,), name="attester-feed", daemon=True)
    try:
        with contextlib.suppress(SentinelError):  # logged by poll_feed; it starts anyway and /healthz says why
            attester.poll_feed()
        follower.start()
        host, port = sock.getsockname()[:2]
        startup = f"{time.perf_counter() - started:.2f}" if started is not None else "-"
        log.info("event=serving url=http://%s:%d signer=%s chain=%d breaker=%s feed=%s record=%s node=%s "
                 "startup_seconds=%s", host, port, attester.key.address, attester.target.chain_id,
                 attester.target.breaker, attester.feed_path, attester.record.path,
                 attester.node.label if attester.node else "-", startup)
        server.run(sockets=[sock])
    finally:
        stop.set()
        if follower.is_alive():
            follower.join(timeout=10)
        sock.close()
        attester.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("event=stopped")
