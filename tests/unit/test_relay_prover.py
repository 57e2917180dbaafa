"""Supervision of the relay's prover child (a stand-in worker speaking the same pipe protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sentinel.config import load_config
from sentinel.errors import RelayError
from sentinel.relay.prover import ProverProcess
from tests.support.fake_prover import worker

STAND_IN: Any = None  # the stand-in worker ignores the market; the real one takes MarketData


@pytest.fixture
def prover(tmp_path: Path):
    process = ProverProcess(tmp_path, load_config(tmp_path, env={}), start_timeout=60, target=worker)
    yield process
    process.close()


def test_a_dead_prover_is_started_again_and_the_next_window_is_proved(prover: ProverProcess):
    first_pid = prover.process.pid
    assert str(prover.prove_end_row(STAND_IN, 7)) == f"proved 7 by {first_pid}"
    with pytest.raises(RelayError, match="died"):
        prover.prove_end_row(STAND_IN, -2)
    assert str(prover.prove_end_row(STAND_IN, 8)).startswith("proved 8 by ")
    assert prover.process.pid != first_pid and prover.restarts == 1


def test_a_timed_out_proof_stops_the_child_and_its_late_answer_never_reaches_the_next_window(prover: ProverProcess):
    first_pid = prover.process.pid
    with pytest.raises(RelayError, match="timed out after 1 s"):
        prover.prove_end_row(STAND_IN, -1, timeout=1)  # it would answer after 3 s
    assert not prover.process.is_alive()
    answer = str(prover.prove_end_row(STAND_IN, 9, timeout=10))
    assert answer.startswith("proved 9 by ") and str(first_pid) not in answer


def test_a_broken_pipe_is_survived(prover: ProverProcess):
    prover.process.kill()
    prover.process.join()
    assert str(prover.prove_end_row(STAND_IN, 4)).startswith("proved 4 by ")


def test_a_batch_circuit_that_cannot_load_leaves_single_proofs_running(tmp_path: Path):
    """The review's R3: the child reports the batch circuit's failure with its readiness; single proofs go on."""
    from tests.support.fake_prover import worker_with_a_broken_batch_circuit

    process = ProverProcess(tmp_path, load_config(tmp_path, env={}), start_timeout=60,
                            target=worker_with_a_broken_batch_circuit)
    try:
        assert process.batch_windows == 0 and "regenerated vk differs" in (process.batch_error or "")
        assert str(process.prove_end_row(STAND_IN, 7)).startswith("proved 7 by ")
    finally:
        process.close()
    plain = ProverProcess(tmp_path, load_config(tmp_path, env={}), start_timeout=60, target=worker)
    try:
        assert plain.batch_windows == 0 and plain.batch_error is None
    finally:
        plain.close()
