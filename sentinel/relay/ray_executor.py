"""The ``ray`` proving executor: one warm prover per Ray actor, on whichever nodes joined the cluster.

``relay.executor = "ray"`` and ``relay.ray_address`` (the head's host:port). Each actor asks Ray for
``prover_threads`` CPUs and pins EZKL's rayon pool to as many threads through its runtime env, so Ray places
as many actors on a node as its CPUs hold. Every node reads the artifacts at the same path as the relay (a
shared volume, or the same tree rsynced to each node); an actor checks the verifying key it loaded against
the digest in the relay's manifest and refuses a mismatch, so a node with stale artifacts never proves.

Scheduling (earliest deadline first, stale drops, one outcome per job) is the local executor's
(:class:`sentinel.relay.executor.Dispatcher`): one thread in the relay per actor waits on its object refs. An
actor that dies under a proof is restarted by Ray (``max_restarts``) while its job goes back to the queue,
for another actor if one is idle; Ray itself never retries the call (``max_task_retries = 0``), so a
window is never proved twice into two outcomes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import CircuitError, ProverLost, RelayError, SentinelError
from sentinel.relay.executor import BEST_THREADS_PER_PROOF, Dispatcher, Dispatching, ProofJob, ProverInfo

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.data.validate import MarketData

log = logging.getLogger("sentinel.relay")

#: Ray restarts a dead prover actor this many times (then its jobs fail over to the other actors).
ACTOR_RESTARTS = 5


class ProverActor:
    """A warm prover in a Ray actor: the provers of each artifact set it was asked for, loaded once."""

    def __init__(self) -> None:
        self._provers: dict[str, tuple[Any, Any, str | None]] = {}

    def where(self) -> tuple[int, str]:
        """This actor's pid and node id (a test kills the pid to see the job proved again)."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def load(self, root: str, config: dict[str, Any], vk_sha256: str) -> ProverInfo:
        """Load (once) the provers of ``root``; CircuitError if its verifying key is not the relay's."""
        from sentinel.relay.prover import load_provers

        if root not in self._provers:
            provers = load_provers(root, config)
            got = provers[0].manifest["artifacts"]["vk"]["sha256"]
            if got != vk_sha256:
                raise CircuitError(f"{root}: the verifying key on node {self.where()[1][:12]} has sha256 {got}, the "
                                   f"relay's manifest {vk_sha256}: sync the artifacts to every node (shared volume "
                                   "or rsync)")
            self._provers[root] = provers
        prover, batch, batch_error = self._provers[root]
        return ProverInfo(prover.window, prover.cadence,
                          int(batch.manifest["windows_per_proof"]) if batch else 0, batch_error)

    def prove(self, root: str, config: dict[str, Any], vk_sha256: str, market: MarketData,
              ends: list[int], proofs: str | None = None) -> tuple[str, Any, str]:
        """("ok", result, node) or ("error", message, node): errors come back as values, not Ray task errors."""
        from sentinel.relay.prover import prove_with

        node = self.where()[1][:12]
        try:
            self.load(root, config, vk_sha256)
            prover, batch, batch_error = self._provers[root]
            return "ok", prove_with(prover, batch, batch_error, market, ends[0] if len(ends) == 1 else ends,
                                    proofs), node
        except SentinelError as exc:
            return "error", str(exc), node


def _vk_digest(root: str) -> str:
    from sentinel.artifacts import ArtifactLayout
    from sentinel.zk.manifest import load_manifest

    return str(load_manifest(ArtifactLayout(Path(root)))["artifacts"]["vk"]["sha256"])


class RayExecutor(Dispatching):
    """Proofs on Ray actors (see module doc)."""

    def __init__(self, config: SentinelConfig, *, address: str | None = None, actors: int | None = None,
                 threads: int | None = None) -> None:
        import ray

        import sentinel

        rc = config.relay
        self.address = address or rc.ray_address
        if not self.address:
            raise RelayError("relay.executor = 'ray' needs relay.ray_address (the head's host:port)")
        try:
            ray.init(address=self.address, namespace="sentinel", logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            raise RelayError(f"ray: cannot connect to the cluster at {self.address}: {exc}".splitlines()[0]) from exc
        self.threads = threads or rc.prover_threads or BEST_THREADS_PER_PROOF
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        count = actors or rc.ray_actors or max(1, int(cpus) // self.threads)
        source = str(Path(sentinel.__file__).resolve().parent.parent)  # the same path on every node
        env = {"RAYON_NUM_THREADS": str(self.threads),
               "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)}
        remote = ray.remote(ProverActor).options(num_cpus=self.threads, max_restarts=ACTOR_RESTARTS,
                                                 max_task_retries=0, runtime_env={"env_vars": env})
        names = tuple(f"ray-{i}" for i in range(count))
        self._actors: dict[str, Any] = {name: remote.remote() for name in names}  # actor handles (untyped calls)
        self._timeout = rc.prove_timeout_seconds
        self._vk: dict[str, str] = {}
        self._dispatch = Dispatcher(names, self._prove_on, max_attempts=rc.max_attempts)
        log.info("event=executor kind=ray address=%s actors=%d threads=%d", self.address, count, self.threads)

    @property
    def workers(self) -> tuple[str, ...]:
        return self._dispatch.workers

    def _digest(self, root: str) -> str:
        if root not in self._vk:
            self._vk[root] = _vk_digest(root)
        return self._vk[root]

    def where(self) -> dict[str, tuple[int, str]]:
        """Each actor's (pid, node id) now."""
        import ray

        return {name: ray.get(actor.where.remote(), timeout=120) for name, actor in self._actors.items()}

    def warm(self, root: str, config: dict[str, Any]) -> ProverInfo:
        """Load ``root``'s provers on every actor now (CircuitError if a node's verifying key differs)."""
        import ray

        refs = [actor.load.remote(root, config, self._digest(root)) for actor in self._actors.values()]
        try:
            infos: list[ProverInfo] = ray.get(refs, timeout=self._timeout)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, SentinelError) else None
            raise (cause or RelayError(f"ray: an actor could not load {root}: {str(exc).splitlines()[0]}")) from exc
        return infos[0]

    def _prove_on(self, worker: str, job: ProofJob) -> tuple[Any, str | None]:
        import ray

        ref = self._actors[worker].prove.remote(job.root, job.config, self._digest(job.root), job.market,
                                                list(job.ends), job.proofs)
        try:
            status, payload, node = ray.get(ref, timeout=self._timeout)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise ProverLost(f"ray actor {worker} died under the proof: {str(exc).splitlines()[0]}") from exc
        except ray.exceptions.GetTimeoutError as exc:
            ray.cancel(ref, force=True)
            raise RelayError(f"ray actor {worker}: no proof after {self._timeout:g} s") from exc
        if status != "ok":
            raise CircuitError(str(payload))
        return payload, node

    def pids(self) -> list[int]:
        """The actors' pids (on their nodes)."""
        return [pid for pid, _ in self.where().values()]

    @property
    def restarts(self) -> int:
        return 0  # Ray restarts actors itself; the relay does not count them

    def close(self) -> None:
        """Stop the actors and disconnect (the cluster itself keeps running)."""
        import ray

        self._dispatch.close()
        for actor in self._actors.values():
            ray.kill(actor)
        ray.shutdown()
