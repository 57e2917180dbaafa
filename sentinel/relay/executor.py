"""Proving executors: where the relay's proofs run, one proof per process (or Ray actor), many markets at once.

A :class:`ProofJob` names its market and window (its key), the artifact set that proves it, the rows, and a
deadline: the wall-clock moment after which its proof is useless (the window would be stale on chain). Jobs
are served earliest deadline first; one whose deadline passes before a worker takes it is dropped as
``stale`` unproved, one whose proof finishes after it is ``stale`` too. Every submitted job gets exactly one
:class:`ProofOutcome`; a key already in flight is refused.

EZKL's Python binding holds the GIL for a whole proof, so a worker is a process (``local``) or an actor
(``ray``), never a thread: the parent's threads here only wait on a pipe or an object ref. A worker that dies
under a proof (killed, crashed) is replaced (:class:`sentinel.relay.prover.ProverProcess` restarts its
child; Ray restarts an actor) and the job goes back to the queue, for another worker if one is idle.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sentinel.errors import ConfigError, ProverLost, RelayError, SentinelError

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.data.validate import MarketData
    from sentinel.relay.prover import ProverProcess

log = logging.getLogger("sentinel.relay")

#: Threads per proof that prove the most windows a minute on the default circuit (docs/scaling.md: measured on
#: 2 cores, 2 workers x 1 thread against 1 worker x 2 threads); ``relay.prover_threads = 0`` picks this.
BEST_THREADS_PER_PROOF = 1
STATUSES = ("ok", "error", "stale")


@dataclass(frozen=True)
class ProofJob:
    """One proof to make: window ``key[1]`` of market ``key[0]``, proved with the artifact set at ``root``."""

    key: tuple[str, int]  #: (market name, window id): the job's identity
    root: str  #: project root of the artifact set (read with ArtifactLayout)
    config: dict[str, Any] = field(compare=False, hash=False)  #: flat overrides (sentinel.relay.prover._flat)
    market: MarketData = field(compare=False, hash=False)  #: rows holding the window(s)
    ends: tuple[int, ...]  #: one end row = one window; K consecutive = one batch proof
    deadline: float  #: wall clock: a proof finished after this is useless
    arrived: float  #: wall clock when the window arrived
    proofs: str | None = None  #: bundle directory relative to ``root`` (a market's own; None: ``proofs/``)


@dataclass(frozen=True)
class ProofOutcome:
    """What became of one job: ``ok`` (with its ProveResult / BatchProveResult), ``error`` or ``stale``."""

    key: tuple[str, int]
    status: str
    result: Any
    error: str | None
    arrived: float
    started: float | None  #: when a worker took it (None: dropped before)
    finished: float
    worker: str | None
    node: str | None = None  #: the Ray node that proved it
    attempts: int = 0

    @property
    def latency(self) -> float:
        """Seconds from the window's arrival to its outcome."""
        return self.finished - self.arrived


@dataclass(frozen=True)
class ProverInfo:
    """What a warm prover loaded from an artifact set: window rows, cadence, batch windows (0: none) and why not."""

    window: int
    cadence: float
    batch_windows: int
    batch_error: str | None


class ProvingExecutor(Protocol):
    """Where proofs run (see module doc)."""

    @property
    def workers(self) -> tuple[str, ...]: ...

    def warm(self, root: str, config: dict[str, Any]) -> ProverInfo: ...

    def submit(self, job: ProofJob) -> None: ...

    def poll(self, timeout: float = 0.0) -> list[ProofOutcome]: ...

    def prove(self, job: ProofJob, timeout: float) -> ProofOutcome: ...

    def in_flight(self) -> set[tuple[str, int]]: ...

    def close(self) -> None: ...


def local_size(cores: int, provers: int, threads: int, *, at_once: int = 0) -> tuple[int, int]:
    """(workers, threads per proof) on ``cores`` cores for ``relay.provers`` and ``relay.prover_threads`` (0 = auto:
    :data:`BEST_THREADS_PER_PROOF` threads, as many workers as the cores hold). ``at_once``: the most jobs the
    caller keeps in flight (0 = many); auto sizing starts no more workers than that and gives them the cores."""
    if provers < 0 or threads < 0:
        raise ConfigError(f"relay.provers ({provers}) and relay.prover_threads ({threads}) must be >= 0")
    cores = max(1, cores)
    if not provers and at_once and at_once < cores // (threads or min(BEST_THREADS_PER_PROOF, cores)):
        provers = at_once
    if not threads:
        threads = max(1, cores // provers) if provers else min(BEST_THREADS_PER_PROOF, cores)
    return (provers or max(1, cores // threads)), threads


@dataclass
class _Entry:
    job: ProofJob
    seq: int
    attempts: int = 0
    avoid: str | None = None  #: the worker it died on: another idle one takes it first


class Dispatcher:
    """The scheduling both executors share: an earliest-deadline-first queue served by one waiting thread per
    worker, stale drops, re-queueing after a lost worker, one outcome per job. ``prove_on(worker, job)`` runs
    the proof (raising ProverLost if the worker died under it, another SentinelError if the proof failed)."""

    def __init__(self, workers: tuple[str, ...], prove_on: Callable[[str, ProofJob], tuple[Any, str | None]],
                 *, max_attempts: int = 3, clock: Callable[[], float] = time.time) -> None:
        self.workers = workers
        self._prove_on = prove_on
        self._max_attempts = max_attempts
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: list[_Entry] = []
        self._keys: set[tuple[str, int]] = set()  # submitted, outcome not yet handed out
        self._done: dict[tuple[str, int], ProofOutcome] = {}
        self._running: dict[tuple[str, int], str] = {}  # key -> the worker proving it now
        self._idle = 0
        self._seq = 0
        self._closing = False
        self._threads = [threading.Thread(target=self._serve, args=(w,), name=f"executor-{w}", daemon=True)
                         for w in workers]
        for thread in self._threads:
            thread.start()

    def submit(self, job: ProofJob) -> None:
        """Queue ``job``; RelayError if its key is already in flight or the executor is closed."""
        with self._cond:
            if self._closing:
                raise RelayError(f"job {job.key}: the executor is closed")
            if job.key in self._keys:
                raise RelayError(f"job {job.key}: already in flight (one outcome per market and window)")
            self._keys.add(job.key)
            self._seq += 1
            self._queue.append(_Entry(job, self._seq))
            self._cond.notify_all()

    def in_flight(self) -> set[tuple[str, int]]:
        with self._cond:
            return set(self._keys)

    def running(self) -> dict[tuple[str, int], str]:
        """The jobs being proved now and their workers."""
        with self._cond:
            return dict(self._running)

    def poll(self, timeout: float = 0.0) -> list[ProofOutcome]:
        """Every outcome ready (waiting up to ``timeout`` s for the first); each is handed out once."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self._done and time.monotonic() < end:
                self._cond.wait(max(0.0, end - time.monotonic()))
            got = list(self._done.values())
            self._done.clear()
            self._keys.difference_update(o.key for o in got)
            return got

    def prove(self, job: ProofJob, timeout: float) -> ProofOutcome:
        """Submit ``job`` and wait for its outcome (RelayError after ``timeout`` s; it then comes through poll)."""
        self.submit(job)
        end = time.monotonic() + timeout
        with self._cond:
            while job.key not in self._done:
                left = end - time.monotonic()
                if left <= 0:
                    raise RelayError(f"job {job.key}: no outcome after {timeout:g} s")
                self._cond.wait(left)
            self._keys.discard(job.key)
            return self._done.pop(job.key)

    def _take(self, worker: str) -> _Entry | None:
        with self._cond:
            while not self._closing:
                ordered = sorted(self._queue, key=lambda e: (e.job.deadline, e.seq))
                # a job that lost its worker goes to another idle one first (this thread not counted)
                pick = next((e for e in ordered if e.avoid != worker or self._idle == 0), None)
                if pick is not None:
                    self._queue.remove(pick)
                    return pick
                self._idle += 1
                self._cond.wait(1.0)
                self._idle -= 1
            return None

    def _finish(self, entry: _Entry, status: str, result: Any, error: str | None, started: float | None,
                worker: str | None, node: str | None = None) -> None:
        outcome = ProofOutcome(entry.job.key, status, result, error, entry.job.arrived, started, self._clock(),
                               worker, node, entry.attempts)
        with self._cond:
            self._running.pop(entry.job.key, None)
            self._done[entry.job.key] = outcome
            self._cond.notify_all()

    def _serve(self, worker: str) -> None:
        while (entry := self._take(worker)) is not None:
            job = entry.job
            started = self._clock()
            if started >= job.deadline:
                log.info("event=stale_dropped market=%s window=%d worker=%s", job.key[0], job.key[1], worker)
                self._finish(entry, "stale", None, "deadline passed before a worker took it", None, None)
                continue
            entry.attempts += 1
            with self._cond:
                self._running[job.key] = worker
            try:
                result, node = self._prove_on(worker, job)
            except ProverLost as exc:
                if entry.attempts < self._max_attempts:
                    log.warning("event=prove_requeued market=%s window=%d worker=%s attempt=%d error=%r",
                                job.key[0], job.key[1], worker, entry.attempts, str(exc))
                    with self._cond:
                        self._running.pop(job.key, None)
                        entry.avoid = worker
                        self._queue.append(entry)
                        self._cond.notify_all()
                    continue
                self._finish(entry, "error", None, str(exc), started, worker)
                continue
            except SentinelError as exc:
                self._finish(entry, "error", None, str(exc), started, worker)
                continue
            late = self._clock() > job.deadline
            self._finish(entry, "stale" if late else "ok", None if late else result,
                         "proved after its deadline" if late else None, started, worker, node)

    def close(self) -> None:
        """Stop taking jobs; the ones in progress finish (their threads are waited for)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)


class Dispatching:
    """What both executors hand to their :class:`Dispatcher` as they are: submitting, polling, proving and the
    jobs in flight or running (each executor adds its workers and how a worker proves)."""

    _dispatch: Dispatcher

    def submit(self, job: ProofJob) -> None:
        self._dispatch.submit(job)

    def poll(self, timeout: float = 0.0) -> list[ProofOutcome]:
        return self._dispatch.poll(timeout)

    def prove(self, job: ProofJob, timeout: float) -> ProofOutcome:
        return self._dispatch.prove(job, timeout)

    def in_flight(self) -> set[tuple[str, int]]:
        return self._dispatch.in_flight()

    def running(self) -> dict[tuple[str, int], str]:
        return self._dispatch.running()


class LocalExecutor(Dispatching):
    """A pool of warm prover processes on this machine (see module doc): ``workers`` x ``threads``, each worker
    holding one :class:`ProverProcess` per artifact-set root, started on first use (or by :meth:`warm`)."""

    def __init__(self, config: SentinelConfig, *, workers: int | None = None, threads: int | None = None,
                 at_once: int = 0, target: Callable[[Connection, str, dict[str, Any]], None] | None = None,
                 start_timeout: float = 600.0) -> None:
        rc = config.relay
        n, t = local_size(os.cpu_count() or 1, rc.provers if workers is None else workers,
                          rc.prover_threads if threads is None else threads, at_once=at_once)
        self.threads = t
        self._target = target
        self._start_timeout = start_timeout
        self._timeout = rc.prove_timeout_seconds
        names = tuple(f"local-{i}" for i in range(n))
        self._provers: dict[str, dict[str, ProverProcess]] = {w: {} for w in names}
        self._locks = {w: threading.Lock() for w in names}
        self._dispatch = Dispatcher(names, self._prove_on, max_attempts=rc.max_attempts)
        log.info("event=executor kind=local workers=%d threads=%d", n, t)

    @property
    def workers(self) -> tuple[str, ...]:
        return self._dispatch.workers

    def _prover(self, worker: str, root: str, config: dict[str, Any]) -> ProverProcess:
        from sentinel.relay.prover import ProverProcess, _worker

        with self._locks[worker]:
            prover = self._provers[worker].get(root)
            if prover is None:
                prover = ProverProcess(Path(root), config, self._start_timeout, target=self._target or _worker,
                                       threads=self.threads, name=f"sentinel-prover-{worker}")
                self._provers[worker][root] = prover
            return prover

    def warm(self, root: str, config: dict[str, Any]) -> ProverInfo:
        """Start every worker's prover for ``root`` now (it loads the circuits, seconds) rather than on first use."""
        provers = [self._prover(w, root, config) for w in self.workers]
        p = provers[0]
        return ProverInfo(p.window, p.cadence, p.batch_windows, p.batch_error)

    def _prove_on(self, worker: str, job: ProofJob) -> tuple[Any, str | None]:
        prover = self._prover(worker, job.root, job.config)
        if len(job.ends) == 1:
            return prover.prove_end_row(job.market, job.ends[0], timeout=self._timeout, proofs=job.proofs), None
        return prover.prove_windows(job.market, list(job.ends), timeout=self._timeout, proofs=job.proofs), None

    def pid(self, worker: str, root: str) -> int | None:
        """The pid of ``worker``'s prover process for ``root`` (None: not started)."""
        prover = self._provers[worker].get(root)
        return None if prover is None else prover.process.pid

    def pids(self) -> list[int]:
        """The prover child processes' pids (for CPU accounting)."""
        return [p.process.pid for provers in self._provers.values() for p in provers.values()
                if p.process.pid is not None]

    @property
    def restarts(self) -> int:
        return sum(p.restarts for provers in self._provers.values() for p in provers.values())

    def close(self) -> None:
        self._dispatch.close()
        for provers in self._provers.values():
            for prover in provers.values():
                prover.close()


def make_executor(config: SentinelConfig, *, at_once: int = 0) -> ProvingExecutor:
    """The executor ``relay.executor`` names: ``local`` or ``ray`` (``at_once``: see :func:`local_size`)."""
    kind = config.relay.executor
    if kind == "local":
        return LocalExecutor(config, at_once=at_once)
    if kind == "ray":
        from sentinel.relay.ray_executor import RayExecutor

        return RayExecutor(config)
    raise ConfigError(f"relay.executor = {kind!r}: expected 'local' or 'ray'")
