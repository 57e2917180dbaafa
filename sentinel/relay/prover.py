"""The relay's prover in a warm child process, so the daemon stays responsive while a proof runs.

EZKL's Python binding holds the GIL for the whole proof, seconds on the
default circuit: in-process, ``/healthz`` and ``/metrics`` would not answer
meanwhile. The child loads the circuit and proving key once and
proves windows sent to it over a pipe; the parent waits on the pipe with
a timeout, which releases the GIL. The child ignores SIGINT and SIGTERM, so
stopping the daemon lets the current proof finish (the daemon waits for it);
if the daemon is killed, the child sees its pipe close and exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import CircuitError, ProverLost, RelayError

log = logging.getLogger("sentinel.relay")

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.data.validate import MarketData
    from sentinel.zk.prove import BatchProveResult, Prover, ProveResult


def load_provers(root: str, config: dict[str, Any]) -> tuple[Prover, Prover | None, str | None]:
    """The warm provers of the artifact set at ``root``: single, batch (loaded now, not when the breaker trips,
    when the manifest has one; None if it cannot load, with why, and single proofs go on)."""
    from sentinel.artifacts import ArtifactLayout
    from sentinel.config import load_config
    from sentinel.errors import SentinelError
    from sentinel.zk.prove import Prover

    layout = ArtifactLayout(Path(root))
    settings = load_config(Path(root), config)
    prover = Prover(layout, settings)
    if not prover.manifest.get("batch"):
        return prover, None, None
    try:
        return prover, Prover(layout.batch(), settings), None
    except SentinelError as exc:
        return prover, None, str(exc)


def prove_with(prover: Prover, batch_prover: Prover | None, batch_error: str | None, market: MarketData,
               end: int | list[int], proofs: str | None = None) -> ProveResult | BatchProveResult:
    """Prove the window ending at row ``end``, or the consecutive windows ending at rows ``end`` (a list) in one
    batch proof, with the provers :func:`load_provers` loaded."""
    if isinstance(end, list):
        if batch_prover is None:
            raise CircuitError(f"no batch circuit loaded: {batch_error or 'none was built'}")
        return batch_prover.prove_windows(market, end, proofs=proofs)
    return prover.prove_end_row(market, end, proofs=proofs)


def _worker(conn: Connection, root: str, config: dict[str, Any]) -> None:
    """Child process: load the Prover once, then prove (request id, market, end) requests until the pipe closes;
    ``end`` is a row (one window) or a list of consecutive rows (one batch proof, with the batch circuit, whose
    prover is loaded at start when the batch circuit is built; if it cannot load, single proofs go on and the
    ready message says why).

    Every reply carries its request's id, so the parent never takes one window's proof for another's.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sentinel.errors import SentinelError

    try:
        prover, batch_prover, batch_error = load_provers(root, config)
    except SentinelError as exc:
        conn.send((0, "error", str(exc)))
        return
    conn.send((0, "ready", {"window": prover.window, "cadence": prover.cadence,
                            "batch_windows": int(batch_prover.manifest["windows_per_proof"]) if batch_prover else 0,
                            "batch_error": batch_error}))
    while True:
        try:
            request, market, end, proofs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send((request, "ok", prove_with(prover, batch_prover, batch_error, market, end, proofs)))
        except SentinelError as exc:
            conn.send((request, "error", str(exc)))


def _pinned(target: Callable[[Connection, str, dict[str, Any]], None], threads: int, conn: Connection, root: str,
            config: dict[str, Any]) -> None:
    """Child entry: pin EZKL's rayon pool to ``threads`` (0 = rayon's own choice) before anything imports ezkl."""
    if threads > 0:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    target(conn, root, config)


def _flat(config: SentinelConfig) -> dict[str, Any]:
    """The resolved config as dotted overrides, so the child resolves exactly the same settings."""
    return {f"{section}.{name}": value
            for section, fields in config.to_dict().items() for name, value in fields.items()}


class ProverProcess:
    """A warm prover in a supervised child process with ``Prover.prove_end_row``'s interface.

    Supervision: a child that died (killed, crashed) is started again before the next request; a request
    that outlives its timeout kills the child (it would go on proving a window nobody waits for) and the
    next request starts a fresh one; replies carry request ids, and one for an older request is dropped.
    Every failure is a RelayError, so the daemon's window leaves ``proving`` on every path.
    """

    def __init__(self, root: Path, config: SentinelConfig | dict[str, Any], start_timeout: float = 600.0, *,
                 target: Callable[[Connection, str, dict[str, Any]], None] = _worker, threads: int = 0,
                 name: str = "sentinel-prover") -> None:
        """``config``: the settings, or their flat overrides as :func:`_flat` makes them; ``threads``: EZKL's
        proving threads in the child (0 = all cores)."""
        self._args = (str(root), config if isinstance(config, dict) else _flat(config))
        self._target = target
        self.threads = threads
        self.name = name
        self._start_timeout = start_timeout
        self._request = 0
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and sockets
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_pinned, args=(self._target, self.threads, child, *self._args),
                                       name=self.name, daemon=True)
        self.process.start()
        child.close()
        kind, payload = self._receive(0, self._start_timeout, "starting the prover")
        if kind != "ready":
            self._stop()
            raise CircuitError(f"the prover process could not start: {payload}")
        self.window = int(payload["window"])
        self.cadence = float(payload["cadence"])
        #: windows per batch proof the child can prove (0: none), and why not if the build made a batch circuit
        self.batch_windows = int(payload.get("batch_windows", 0))
        self.batch_error: str | None = payload.get("batch_error")

    def _restart(self, why: str) -> None:
        self._stop()
        self.restarts += 1
        log.warning("event=prover_restart reason=%r restarts=%d", why, self.restarts)
        self._start()

    def _receive(self, request: int, timeout: float, what: str) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        gone = False  # the child closed its end of the pipe or exited
        while time.monotonic() < deadline:
            if self._conn.poll(0.25):  # waits without the GIL: the status server keeps answering
                try:
                    got, kind, payload = self._conn.recv()  # (request id, kind, payload), as _worker sends it
                except (EOFError, OSError):
                    gone = True
                    break
                if got != request:
                    log.warning("event=prover_stale_reply request=%s expected=%s: dropped", got, request)
                    continue
                return kind, payload
            if not self.process.is_alive() and not self._conn.poll(0):
                gone = True
                break
        if not gone:
            self._stop()  # it would go on proving a window nobody waits for, and answer the next request
            raise RelayError(f"{what}: the prover process timed out after {timeout:g} s; it was stopped and "
                             "the next window starts a fresh one")
        self._stop()  # reaps it (and kills it, should it still run with its pipe closed)
        raise ProverLost(f"{what}: the prover process died (exit code {self.process.exitcode}); "
                         "the next window starts a fresh one")

    def prove_end_row(self, market: MarketData, end: int, timeout: float = 3600.0, *,
                      proofs: str | None = None) -> ProveResult:
        """Prove the window of ``market`` ending at row ``end`` in the child; returns its ProveResult (its bundle
        under ``proofs``, relative to the root, else the child's layout's)."""
        result: ProveResult = self._request_proof(market, end, timeout, proofs)
        return result

    def prove_windows(self, market: MarketData, ends: list[int], timeout: float = 3600.0, *,
                      proofs: str | None = None) -> BatchProveResult:
        """Prove the windows of ``market`` ending at rows ``ends`` (consecutive) in one batch proof in the child."""
        result: BatchProveResult = self._request_proof(market, list(ends), timeout, proofs)
        return result

    def _request_proof(self, market: MarketData, end: int | list[int], timeout: float, proofs: str | None) -> Any:
        if not self.process.is_alive():
            self._restart(f"the prover process was gone (exit code {self.process.exitcode})")
        self._request += 1
        try:
            self._conn.send((self._request, market, end, proofs))
        except (BrokenPipeError, EOFError, OSError):
            self._restart("the prover's pipe was broken")
            self._conn.send((self._request, market, end, proofs))
        kind, payload = self._receive(self._request, timeout, "proving")
        if kind != "ok":
            raise CircuitError(payload)
        return payload

    def _stop(self) -> None:
        self._conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)

    def close(self) -> None:
        """Let the child finish and exit (it exits when its pipe closes); kill it if it does not."""
        self._conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
