"""Off-chain verification of on-chain proofs with EZKL, serially or in a process pool.

Each proof is rebuilt from calldata alone (proof bytes and instances as
EZKL's little-endian felts) and verified with the vk, settings and SRS of
the artifact set whose verifier was active when the report was accepted.
EZKL's verify holds one core, so a pool of processes (spawned: no forked web3
or EZKL state) runs them side by side; see README "Auditor" for the figures.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict


@dataclass(frozen=True)
class ProofTask:
    """One proof to verify against one circuit."""

    proof: bytes
    instances: tuple[int, ...]
    settings: Path
    vk: Path
    srs: Path


class ProofDocument(TypedDict):
    """The part of EZKL's proof JSON that ``verify`` reads."""

    proof: list[int]
    instances: list[list[str]]


def proof_document(proof: bytes, instances: Sequence[int]) -> ProofDocument:
    """The minimal EZKL proof JSON: proof bytes and one list of little-endian hex felts."""
    from sentinel.zk.instances import felt_to_hex

    return {"proof": list(proof), "instances": [[felt_to_hex(int(i)) for i in instances]]}


def verify_one(task: ProofTask) -> bool:
    """True iff EZKL accepts ``task``'s proof (False for invalid proofs and malformed instances)."""
    from sentinel.zk import ezkl_api
    from sentinel.zk.instances import BN254_R

    if any(not 0 <= i < BN254_R for i in task.instances):
        return False
    with tempfile.TemporaryDirectory(prefix="sentinel-audit-proof-") as tmp:
        path = Path(tmp) / "proof.json"
        path.write_text(json.dumps(proof_document(task.proof, task.instances)))
        return ezkl_api.verify(path, task.settings, task.vk, task.srs)


def _verify_chunk(tasks: list[ProofTask]) -> list[bool]:
    return [verify_one(t) for t in tasks]


def resolve_workers(workers: int) -> int:
    """``0`` means one per CPU."""
    return workers if workers > 0 else (os.cpu_count() or 1)


def verify_all(tasks: list[ProofTask], workers: int = 1,
               progress: Callable[[int, int], None] | None = None) -> list[bool]:
    """Verify every task, in order; with ``workers`` > 1 in a spawned process pool (chunks keep IPC small)."""
    n = len(tasks)
    results: list[bool] = []
    if workers <= 1 or n < 2:
        for t in tasks:
            results.append(verify_one(t))
            if progress:
                progress(len(results), n)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(1, min(16, n // (workers * 4) or 1))
    chunks = [tasks[i:i + size] for i in range(0, n, size)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for chunk_result in pool.map(_verify_chunk, chunks):
            results.extend(chunk_result)
            if progress:
                progress(len(results), n)
    return results
