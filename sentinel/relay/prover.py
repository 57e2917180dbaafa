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

import multiprocessing
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import CircuitError, RelayError

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.data.validate import MarketData
    from sentinel.zk.prove import ProveResult


def _worker(conn: Connection, root: str, config: dict[str, Any]) -> None:
    """Child process: load the Prover once, then prove (market, end_row) requests until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sentinel.artifacts import ArtifactLayout
    from sentinel.config import load_config
    from sentinel.errors import SentinelError
    from sentinel.zk.prove import Prover

    try:
        prover = Prover(ArtifactLayout(Path(root)), load_config(Path(root), config))
    except SentinelError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", {"window": prover.window, "cadence": prover.cadence}))
    while True:
        try:
            market, end = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", prover.prove_end_row(market, end)))
        except SentinelError as exc:
            conn.send(("error", str(exc)))


def _flat(config: SentinelConfig) -> dict[str, Any]:
    """The resolved config as dotted overrides, so the child resolves exactly the same settings."""
    return {f"{section}.{name}": value
            for section, fields in config.to_dict().items() for name, value in fields.items()}


class ProverProcess:
    """A warm prover in a child process with ``Prover.prove_end_row``'s interface."""

    def __init__(self, root: Path, config: SentinelConfig, start_timeout: float = 600.0) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and sockets
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, str(root), _flat(config)),
                                       name="sentinel-prover", daemon=True)
        self.process.start()
        child.close()
        kind, payload = self._receive(start_timeout, "starting the prover")
        if kind != "ready":
            raise CircuitError(f"the prover process could not start: {payload}")
        self.window = int(payload["window"])
        self.cadence = float(payload["cadence"])

    def _receive(self, timeout: float, what: str) -> tuple[str, Any]:
        waited = 0.0
        while waited < timeout:
            if self._conn.poll(0.25):  # waits without the GIL: the status server keeps answering
                try:
                    message: tuple[str, Any] = self._conn.recv()  # (kind, payload), as _worker sends it
                except EOFError:
                    break
                return message
            waited += 0.25
            if not self.process.is_alive() and not self._conn.poll(0):
                break
        raise RelayError(f"{what}: the prover process {'died' if not self.process.is_alive() else 'timed out'}"
                         f" (exit code {self.process.exitcode})")

    def prove_end_row(self, market: MarketData, end: int, timeout: float = 3600.0) -> ProveResult:
        """Prove the window of ``market`` ending at row ``end`` in the child; returns its ProveResult."""
        self._conn.send((market, end))
        kind, payload = self._receive(timeout, "proving")
        if kind != "ok":
            raise CircuitError(payload)
        result: ProveResult = payload
        return result

    def close(self) -> None:
        self._conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
