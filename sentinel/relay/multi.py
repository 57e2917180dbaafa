"""One relay daemon for many markets: a :class:`~sentinel.relay.daemon.Relay` per market, each in its own thread.

A lending protocol guards tens of markets, and in a market-wide crash every one of them needs its reports at
once. Each market keeps its own feed, artifacts, breaker, attesters and windows, and runs the single-market
pass loop unchanged; what the markets share is what must be shared:

- the queue file (one table keyed by market and window) and its lock: one daemon per queue;
- the signer: one key, so one nonce sequence; a nonce is chosen, signed, stored and sent under one lock,
  above every market's sent transactions (:meth:`~sentinel.relay.queue.Queue.submitted_nonces`);
- the metrics registry, every metric labelled with its market, and one ``/healthz`` with a section per market;
- the proving executor (:mod:`sentinel.relay.executor`): a pool of warm provers sized for the markets, or Ray
  actors, each proof keyed by (market, window) and written to the market's own ``proofs/<market>/``.

A market's threads only wait (on its node, its attesters, its prover process), so one market's bad feed,
failing prover or stalled attesters holds up that market alone: its pass fails and backs off, the others go on.
A bug that escapes a pass is logged and the market's loop is started again after a backoff, never silently
lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sentinel.errors import RelayError, SentinelError
from sentinel.relay.daemon import Backoff, PassResult, Relay, queue_path, run
from sentinel.relay.queue import QueueLock
from sentinel.relay.server import RelayMetrics

if TYPE_CHECKING:
    from sentinel.artifacts import ArtifactLayout
    from sentinel.chain.deploy import Deployments
    from sentinel.config import SentinelConfig
    from sentinel.markets import Market

log = logging.getLogger("sentinel.relay")


class MarketRelays:
    """The relays of every market of one daemon, sharing its queue lock, signer nonce lock and metrics."""

    def __init__(self, relays: Iterable[Relay], lock: QueueLock, metrics: RelayMetrics, executor: Any) -> None:
        self.relays = list(relays)
        if not self.relays:
            raise RelayError("no market to relay")
        names = [r.market for r in self.relays]
        if len(set(names)) != len(names):
            raise RelayError(f"a market is listed twice: {', '.join(names)}")
        self.lock = lock
        self.metrics = metrics
        self.executor = executor  #: the proving executor every market's relay shares
        self.threads: dict[str, threading.Thread] = {}

    @classmethod
    def start(cls, layout: ArtifactLayout, config: SentinelConfig, every: list[Market], deployments: Deployments,
              rpc: str | None = None) -> MarketRelays:
        """A relay per market of ``every``, sharing one queue file (relay.db, else the project's), its lock, the
        signer's nonce lock, the metrics and one proving executor sized for the markets (relay.executor); ``rpc``:
        that one endpoint, whatever relay.rpc_urls says."""
        from sentinel.relay.executor import make_executor

        lock, metrics, nonces = QueueLock(queue_path(layout, config)), RelayMetrics(), threading.Lock()
        relays: list[Relay] = []
        executor = None
        try:
            # one pool for every market: each market proves one window (or batch) at a time
            executor = make_executor(config, at_once=len(every))
            for m in every:
                relays.append(Relay(layout, config, rpc=rpc, data=m.feed, metrics=metrics, market=m.name,
                                    artifacts=m.layout, deployment=deployments.market(m.name), attesters=m.attesters,
                                    lock=lock, nonce_lock=nonces, executor=executor))
        except BaseException:
            for relay in relays:
                relay.close()
            if executor is not None:
                executor.close()
            lock.release()
            raise
        return cls(relays, lock, metrics, executor)

    def __iter__(self) -> Any:
        return iter(self.relays)

    def market(self, name: str) -> Relay:
        for relay in self.relays:
            if relay.market == name:
                return relay
        raise RelayError(f"no market named {name!r}; this relay guards {', '.join(r.market for r in self.relays)}")

    def load_provers(self) -> None:
        """Start every market's warm prover (seconds each: the circuit and its proving key are loaded once)."""
        for relay in self.relays:
            relay.load_prover()
            relay.log.info("event=prover_ready window=%d cadence=%g", relay.window, relay.cadence)

    def run_once(self) -> tuple[dict[str, PassResult], dict[str, SentinelError]]:
        """One pass of every market, in turn (``relay once``): what each did, and the error of each whose pass
        failed (the others' passes still ran)."""
        results: dict[str, PassResult] = {}
        failures: dict[str, SentinelError] = {}
        for relay in self.relays:
            try:
                results[relay.market] = relay.run_once()
            except SentinelError as exc:
                relay.last_error = str(exc)
                relay.log.error("event=pass_failed error=%r", str(exc))
                failures[relay.market] = exc
        return results, failures

    def run(self, stop: threading.Event) -> None:
        """Run every market's pass loop in its own thread until ``stop`` is set; returns when all have finished
        their current step."""
        for relay in self.relays:
            thread = threading.Thread(target=self._loop, args=(relay, stop), name=f"relay-{relay.market}",
                                      daemon=True)
            self.threads[relay.market] = thread
            thread.start()
        for thread in self.threads.values():
            while thread.is_alive():
                thread.join(timeout=0.5)

    @staticmethod
    def _loop(relay: Relay, stop: threading.Event) -> None:
        """One market's loop; a bug escaping :func:`~sentinel.relay.daemon.run` is logged and the loop restarted
        after a backoff (the queue holds all progress), so the market is never silently dropped."""
        backoff = Backoff(relay.rc.backoff_initial_seconds, relay.rc.backoff_max_seconds)
        while not stop.is_set():
            try:
                run(relay, stop)
            except Exception as exc:  # one market's bug must not end the others' relaying
                relay.ready = False
                relay.last_error = f"{type(exc).__name__}: {exc}"
                wait = backoff.next()
                relay.log.exception("event=market_loop_crashed retry_in=%.1f", wait)
                stop.wait(wait)

    def health(self) -> dict[str, Any]:
        """``/healthz``: ready when every market is; a section per market. With one market its fields are also
        at the top level (what a one-market relay always answered)."""
        markets = {relay.market: relay.health() for relay in self.relays}
        payload: dict[str, Any] = {"ready": all(h["ready"] for h in markets.values()), "markets": markets}
        if len(markets) == 1:
            payload = {**next(iter(markets.values())), **payload}
        return payload

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
        self.executor.close()
        self.lock.release()
