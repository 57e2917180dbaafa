"""A stand-in for the relay's prover child (sentinel.relay.prover._worker), to test its supervision.

It speaks the same pipe protocol; ``end`` picks a behaviour: -1 answers late (after 3 s), -2 dies, anything
else is answered at once with ``"proved <end> by <pid>"``.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import Any


def worker(conn: Connection, root: str, config: dict[str, Any]) -> None:
    conn.send((0, "ready", {"window": 50, "cadence": 60.0}))
    while True:
        try:
            request, _market, end, _proofs = conn.recv()
        except (EOFError, OSError):
            return
        if end == -2:
            os._exit(3)
        if end == -1:
            time.sleep(3)
        conn.send((request, "ok", f"proved {end} by {os.getpid()}"))


def worker_with_a_broken_batch_circuit(conn: Connection, root: str, config: dict[str, Any]) -> None:
    """Ready for single proofs, with the batch circuit that failed to load named, as the real worker says it."""
    conn.send((0, "ready", {"window": 50, "cadence": 60.0, "batch_windows": 0,
                            "batch_error": "circuits/batch/pk.key: regenerated vk differs from the manifest's"}))
    while True:
        try:
            request, _market, end, _proofs = conn.recv()
        except (EOFError, OSError):
            return
        conn.send((request, "ok", f"proved {end} by {os.getpid()}"))
