"""The proving executors on real EZKL proofs of the tiny circuit: local warm processes, and Ray actors on a head
node and a second node started here (own process groups, private temp dir, fixed free ports, stopped by pid)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.relay.executor import LocalExecutor, ProofJob, ProofOutcome
from sentinel.relay.prover import _flat

pytestmark = pytest.mark.integration



def market_roots(tiny_circuit: Path, base: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """One project root per market linking the tiny circuit and model (each market's bundles land in its own)."""
    roots = {}
    for name in names:
        root = base / name
        root.mkdir()
        for part in ("circuits", "models", "sentinel.toml"):
            (root / part).symlink_to(tiny_circuit / part)
        roots[name] = root
    return roots


def jobs(roots: dict[str, Path], tiny_feed: Path, deadline_in: float = 600) -> list[ProofJob]:
    from sentinel.data.io import read_market_csv

    market = read_market_csv(tiny_feed)
    flat = _flat(load_config(next(iter(roots.values())), env={}))
    now = time.time()
    return [ProofJob((name, i), str(root), flat, market, (len(market) - 1 - i,), now + deadline_in, now)
            for i, (name, root) in enumerate(roots.items())]


def collect(executor: Any, count: int, timeout: float) -> list[ProofOutcome]:
    got: list[ProofOutcome] = []
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        got.extend(executor.poll(1.0))
    return got


def verified(outcome: ProofOutcome, root: Path) -> bool:
    from sentinel.zk.verify import verify_bundle

    return outcome.status == "ok" and verify_bundle(ArtifactLayout(root), outcome.result.bundle).valid


def test_two_local_workers_prove_two_markets_at_once_and_the_proofs_verify(tiny_circuit: Path, tiny_feed: Path,
                                                                         tmp_path: Path):
    roots = market_roots(tiny_circuit, tmp_path, ("eth", "btc"))
    executor = LocalExecutor(load_config(tiny_circuit, env={}), workers=2, threads=1)
    try:
        batch = jobs(roots, tiny_feed)
        for job in batch:  # warm first: both jobs then wait for the two idle workers at once
            executor.warm(job.root, job.config)
        for job in batch:
            executor.submit(job)
        outcomes = collect(executor, 2, 120)
    finally:
        executor.close()
    assert sorted(o.key for o in outcomes) == [("btc", 1), ("eth", 0)]
    assert {o.worker for o in outcomes} == {"local-0", "local-1"}
    starts = sorted(o.started or 0 for o in outcomes)
    assert starts[1] < min(o.finished for o in outcomes)  # side by side, not one after the other
    assert all(verified(o, roots[o.key[0]]) for o in outcomes)


def test_a_local_worker_killed_mid_proof_is_restarted_and_the_window_proved_once(tiny_circuit: Path,
                                                                                tiny_feed: Path, tmp_path: Path):
    roots = market_roots(tiny_circuit, tmp_path, ("eth",))
    executor = LocalExecutor(load_config(tiny_circuit, env={}), workers=1, threads=1)
    try:
        (job,) = jobs(roots, tiny_feed)
        executor.warm(job.root, job.config)
        first = executor.pid("local-0", job.root)
        executor.submit(job)
        deadline = time.monotonic() + 30
        while job.key not in executor.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # inside the proof
        assert first is not None
        os.kill(first, signal.SIGKILL)
        outcomes = collect(executor, 1, 120)
        outcomes += executor.poll(2.0)
        assert executor.pid("local-0", job.root) != first and executor.restarts == 1
    finally:
        executor.close()
    assert [o.key for o in outcomes] == [job.key]
    assert outcomes[0].attempts == 2 and verified(outcomes[0], roots["eth"])


# -- Ray --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_executor(ray_cluster: str, tiny_circuit: Path) -> Iterator[Any]:
    from sentinel.relay.ray_executor import RayExecutor

    executor = RayExecutor(load_config(tiny_circuit, env={}), address=ray_cluster, threads=1)
    try:
        yield executor
    finally:
        executor.close()


def test_ray_actors_on_both_nodes_prove_and_the_proofs_verify(ray_executor: Any, tiny_circuit: Path,
                                                             tiny_feed: Path, tmp_path: Path):
    roots = market_roots(tiny_circuit, tmp_path, ("eth", "btc"))
    assert len(ray_executor.workers) == 2
    assert len({node for _, node in ray_executor.where().values()}) == 2  # one actor per node
    batch = jobs(roots, tiny_feed)
    for job in batch:  # warm first: both jobs then wait for the two idle actors at once
        ray_executor.warm(job.root, job.config)
    for job in batch:
        ray_executor.submit(job)
    outcomes = collect(ray_executor, 2, 120)
    assert sorted(o.key for o in outcomes) == [("btc", 1), ("eth", 0)]
    assert len({o.node for o in outcomes}) == 2
    assert all(verified(o, roots[o.key[0]]) for o in outcomes)


def test_a_ray_actor_killed_mid_proof_has_its_job_proved_again_once(ray_executor: Any, tiny_circuit: Path,
                                                                   tiny_feed: Path, tmp_path: Path):
    roots = market_roots(tiny_circuit, tmp_path, ("eth",))
    (job,) = jobs(roots, tiny_feed)
    ray_executor.warm(job.root, job.config)
    where = ray_executor.where()
    ray_executor.submit(job)
    deadline = time.monotonic() + 30
    while job.key not in ray_executor.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = ray_executor.running()[job.key]
    time.sleep(0.5)  # inside the proof
    os.kill(where[victim][0], signal.SIGKILL)
    outcomes = collect(ray_executor, 1, 120)
    outcomes += ray_executor.poll(3.0)
    assert [o.key for o in outcomes] == [job.key]
    assert outcomes[0].status == "ok" and outcomes[0].attempts == 2 and outcomes[0].worker != victim
    assert verified(outcomes[0], roots["eth"])


def test_a_ray_job_past_its_deadline_is_dropped(ray_executor: Any, tiny_circuit: Path, tiny_feed: Path,
                                               tmp_path: Path):
    roots = market_roots(tiny_circuit, tmp_path, ("eth",))
    (job,) = jobs(roots, tiny_feed, deadline_in=-1)
    outcome = ray_executor.prove(job, timeout=60)
    assert outcome.status == "stale" and outcome.started is None and outcome.result is None
