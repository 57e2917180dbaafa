"""``/healthz`` and Prometheus ``/metrics`` for the relay, on a local port (stdlib http.server).

The metrics live in their own registry (not the process-global one), so
several relays in one process (tests, the bench) do not collide.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sentinel.errors import RelayError


class RelayMetrics:
    """The relay's Prometheus metrics, every one labelled with its market (one relay guards many).

    A market's relay records through :meth:`market`'s view, which fills the label in.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        m = ["market"]
        self.prove_seconds = Histogram("sentinel_relay_prove_seconds", "Seconds to prove one window", m, registry=r,
                                       buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300))
        self.windows = Gauge("sentinel_relay_windows", "Windows in the queue by state", [*m, "state"], registry=r)
        self.submit_gas = Histogram("sentinel_relay_submit_gas", "Gas used by confirmed submit transactions", m,
                                    registry=r, buckets=(2e5, 4e5, 6e5, 8e5, 9e5, 1e6, 1.2e6, 1.5e6, 2e6))
        self.last_score = Gauge("sentinel_relay_last_score", "Risk score of the last confirmed report", m, registry=r)
        self.float_score = Gauge("sentinel_relay_float_score", "Float-model score of the last window the reporting "
                                 "policy looked at (relay.report = risk)", m, registry=r)
        self.shadow_score = Gauge("sentinel_relay_shadow_score", "Float score of the last window a candidate "
                                  "version shadow-scored (lifecycle.shadow)", [*m, "version"], registry=r)
        self.tripped = Gauge("sentinel_relay_breaker_tripped", "1 while the breaker is tripped", m, registry=r)
        self.rpc_errors = Counter("sentinel_relay_rpc_errors", "JSON-RPC calls that failed (node down, timeout)", m,
                                  registry=r)
        self.fee_bumps = Counter("sentinel_relay_fee_bumps", "Same-nonce replacements with bumped fees", m,
                                 registry=r)
        self.rebroadcasts = Counter("sentinel_relay_rebroadcasts", "Stored raw transactions sent again", m,
                                    registry=r)
        self.quarantined = Counter("sentinel_relay_quarantined_rows", "Malformed feed rows quarantined", m,
                                   registry=r)
        self.last_confirmed = Gauge("sentinel_relay_last_confirmed_window", "Id of the last confirmed window", m,
                                    registry=r)
        self.attester_requests = Counter(
            "sentinel_relay_attester_requests", "Signature requests to attester services by outcome (signed, "
            "refused, unavailable, invalid, unregistered)", [*m, "attester", "outcome"], registry=r)
        self.attester_seconds = Histogram("sentinel_relay_attester_seconds", "Seconds until an attester answered",
                                          m, registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.attester_shortfall = Gauge("sentinel_relay_attester_shortfall",
                                        "1 while the next window waits for its attester quorum", m, registry=r)
        self.model = Gauge("sentinel_relay_model", "1 for the model version the breaker's verifier is (the artifact "
                           "set the relay proves with)", [*m, "version"], registry=r)
        self.model_switches = Counter("sentinel_relay_model_switches", "Verifier upgrades followed (artifact sets "
                                      "switched at the block the breaker changed its verifier)", m, registry=r)
        self.lag = Gauge("sentinel_relay_lag_seconds",
                         "Feed time from the last confirmed window's end to the newest row", m, registry=r)

    def market(self, name: str) -> MarketMetrics:
        """The metrics as one market records them (its label filled in)."""
        return MarketMetrics(self, name)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class MarketMetrics:
    """One market's view of :class:`RelayMetrics`: the same attributes, the ``market`` label already set
    (``windows``, ``attester_requests``, ``shadow_score`` and ``model`` still take their own labels through
    ``labels(...)``)."""

    _OWN_LABELS = frozenset({"windows", "attester_requests", "shadow_score", "model"})

    def __init__(self, metrics: RelayMetrics, market: str) -> None:
        self.all = metrics
        self.name = market

    def __getattr__(self, attr: str) -> Any:
        metric = getattr(self.all, attr)
        if attr in self._OWN_LABELS:
            return _Partial(metric, self.name)
        return metric.labels(market=self.name)


class _Partial:
    """A labelled metric with its market fixed: ``labels(state=...)`` fills in the rest."""

    def __init__(self, metric: Any, market: str) -> None:
        self.metric = metric
        self.market = market

    def labels(self, **labels: str) -> Any:
        return self.metric.labels(market=self.market, **labels)

    def remove(self, *labels: str) -> None:
        """Drop the series with these labels (after the market's), if it exists."""
        with contextlib.suppress(KeyError):
            self.metric.remove(self.market, *labels)


class StatusServer:
    """Serves ``/healthz`` (JSON; 200 when ready, else 503) and ``/metrics`` on a daemon thread."""

    def __init__(self, host: str, port: int, metrics: RelayMetrics, health: Callable[[], dict[str, Any]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body, status, kind = outer.metrics.render(), 200, "text/plain; version=0.0.4"
                elif self.path.split("?")[0] == "/healthz":
                    payload = outer.health()
                    body = (json.dumps(payload, sort_keys=True) + "\n").encode()
                    status, kind = (200 if payload.get("ready") else 503), "application/json"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes every few seconds: not worth a log line
                return

        self.metrics = metrics
        self.health = health
        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RelayError(f"cannot serve /healthz and /metrics on {host}:{port}: {exc.strerror or exc}",
                             hint="pick another port with --metrics-port or SENTINEL_RELAY__METRICS_PORT (0 = off)"
                             ) from exc
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="relay-status", daemon=True)

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
