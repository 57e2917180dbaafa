"""The local proving executor's scheduling, with the stand-in prover child the ProverProcess tests use.

The stand-in answers ``"proved <end> by <pid>"`` at once; end -1 answers after 3 s, -2 dies (see
tests/support/fake_prover.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sentinel.config import load_config
from sentinel.errors import ConfigError, RelayError
from sentinel.relay.executor import BEST_THREADS_PER_PROOF, LocalExecutor, ProofJob, local_size
from tests.support.fake_prover import worker

STAND_IN: Any = None  # the stand-in ignores the market


def job(market: str, window: int, end: int, deadline_in: float, root: Path) -> ProofJob:
    now = time.time()
    return ProofJob((market, window), str(root), {}, STAND_IN, (end,), now + deadline_in, now)


@pytest.fixture
def one(tmp_path: Path):
    executor = LocalExecutor(load_config(tmp_path, env={}), workers=1, threads=1, target=worker, start_timeout=60)
    executor.warm(str(tmp_path), {})
    yield executor
    executor.close()


def drain(executor: LocalExecutor, count: int, timeout: float = 30) -> list[Any]:
    got: list[Any] = []
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        got.extend(executor.poll(0.5))
    return got


def test_jobs_are_served_earliest_deadline_first(one: LocalExecutor, tmp_path: Path):
    one.submit(job("busy", 0, -1, 60, tmp_path))  # holds the only worker for 3 s while the others queue
    time.sleep(0.5)
    for market, deadline in (("late", 50), ("soon", 10), ("middle", 30)):
        one.submit(job(market, 1, 5, deadline, tmp_path))
    outcomes = drain(one, 4)
    assert [o.key[0] for o in outcomes if o.key[0] != "busy"] == ["soon", "middle", "late"]
    assert all(o.status == "ok" for o in outcomes)
    assert all(o.started is not None and o.started >= o.arrived for o in outcomes)


def test_a_job_whose_deadline_passes_in_the_queue_is_dropped_unproved(one: LocalExecutor, tmp_path: Path):
    one.submit(job("busy", 0, -1, 60, tmp_path))
    time.sleep(0.5)
    one.submit(job("a", 1, 5, 1.0, tmp_path))  # the worker is busy for 2.5 s more
    by_key = {o.key: o for o in drain(one, 2)}
    dropped = by_key[("a", 1)]
    assert dropped.status == "stale" and dropped.started is None and dropped.result is None
    assert dropped.attempts == 0 and "before a worker took it" in (dropped.error or "")


def test_a_proof_finished_after_its_deadline_is_stale_not_ok(one: LocalExecutor, tmp_path: Path):
    outcome = one.prove(job("a", 7, -1, 1.5, tmp_path), timeout=30)  # the stand-in answers after 3 s
    assert outcome.status == "stale" and outcome.result is None and outcome.started is not None
    assert outcome.finished > outcome.arrived + 1.5


def test_a_key_in_flight_is_refused_and_free_again_once_its_outcome_is_out(one: LocalExecutor, tmp_path: Path):
    one.submit(job("a", 3, -1, 60, tmp_path))
    with pytest.raises(RelayError, match="already in flight"):
        one.submit(job("a", 3, 4, 60, tmp_path))
    one.submit(job("b", 3, 4, 60, tmp_path))  # same window, another market: its own job
    assert one.in_flight() == {("a", 3), ("b", 3)}
    outcomes = drain(one, 2)
    assert sorted(o.key for o in outcomes) == [("a", 3), ("b", 3)] and one.in_flight() == set()
    assert one.prove(job("a", 3, 4, 60, tmp_path), timeout=30).status == "ok"


def test_a_worker_dying_under_every_attempt_gives_one_error_outcome(tmp_path: Path):
    config = load_config(tmp_path, env={"SENTINEL_RELAY__MAX_ATTEMPTS": "2"})
    executor = LocalExecutor(config, workers=2, threads=1, target=worker, start_timeout=60)
    try:
        executor.submit(job("a", 1, -2, 60, tmp_path))
        executor.submit(job("b", 1, 9, 60, tmp_path))
        outcomes = drain(executor, 2)
        time.sleep(1.0)
        outcomes += executor.poll(0)
        by_key = {o.key: o for o in outcomes}
        assert len(outcomes) == 2 and by_key[("b", 1)].status == "ok"
        died = by_key[("a", 1)]
        assert died.status == "error" and died.attempts == 2 and "died" in (died.error or "")
        assert str(by_key[("b", 1)].result).startswith("proved 9 by ")
    finally:
        executor.close()


def test_two_workers_prove_at_once_in_two_processes(tmp_path: Path):
    executor = LocalExecutor(load_config(tmp_path, env={}), workers=2, threads=1, target=worker, start_timeout=60)
    try:
        executor.warm(str(tmp_path), {})
        started = time.monotonic()
        executor.submit(job("a", 1, -1, 60, tmp_path))
        executor.submit(job("b", 1, -1, 60, tmp_path))
        outcomes = drain(executor, 2)
        assert time.monotonic() - started < 5.5  # two 3 s proofs side by side, not one after the other
        assert {o.worker for o in outcomes} == {"local-0", "local-1"}
        assert len({str(o.result).split(" by ")[1] for o in outcomes}) == 2
    finally:
        executor.close()


def test_sizing_from_the_cores():
    assert local_size(2, 0, 0) == (2 // BEST_THREADS_PER_PROOF, BEST_THREADS_PER_PROOF)
    assert local_size(8, 0, 2) == (4, 2)
    assert local_size(8, 3, 0) == (3, 2)
    assert local_size(2, 1, 0) == (1, 2)
    assert local_size(1, 0, 4) == (1, 4)
    assert local_size(16, 2, 3) == (2, 3)
    assert local_size(2, 0, 0, at_once=1) == (1, 2)  # the one-market relay: one proof at a time, on every core
    assert local_size(8, 0, 0, at_once=2) == (2, 4)
    assert local_size(2, 3, 0, at_once=1) == (3, 1)  # set explicitly: kept
    with pytest.raises(ConfigError, match=r"relay\.provers"):
        local_size(2, -1, 0)
