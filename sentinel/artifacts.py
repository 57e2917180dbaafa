"""Every path Sentinel reads or writes, in one place.

Nothing else in the code base joins path segments by hand: stages ask the
:class:`ArtifactLayout` for the file they need. Writers use
:func:`atomic_write_bytes` / :func:`atomic_write_text` so a failure never
leaves a half-written file behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ArtifactLayout:
    """Paths of a Sentinel project rooted at ``root``.

    Committed: ``data/`` samples, ``models/`` (small model, ONNX, card, plots).
    Built locally by ``sentinel circuit build`` and never committed:
    ``circuits/`` (settings, compiled circuit, keys, SRS, verifier, manifest).
    Never committed either: proofs and attestations, chain state and
    deployments, relay state.

    ``circuits`` names the circuit set's directory under ``root``: the
    single-window set in ``circuits/``, the batch set (K windows per proof)
    in ``circuits/batch/`` (:meth:`batch`). ``proofs`` names the directory
    proof bundles are written to: ``proofs/``, or ``proofs/<market>/`` for a
    market other than the default (:meth:`for_market`), since markets on one
    cadence prove windows with the same ids. Every other path is shared.
    """

    root: Path
    circuits: str = "circuits"
    proofs: str = "proofs"

    # --- data --------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def synthetic_data(self) -> Path:
        """Default output of ``sentinel data generate``."""
        return self.data_dir / "synthetic.csv"

    def feed(self, setting: str) -> Path:
        """The market-depth feed named by the ``data.feed`` setting (relative to the project root)."""
        return self.root / Path(setting).expanduser()

    def training_data(self, seed: int, episodes: int) -> Path:
        """Default training scenarios; regenerated on demand (deterministic, not committed)."""
        return self.data_dir / f"scenarios-seed{seed}-{episodes}ep.csv"

    # --- model -------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def plots_dir(self) -> Path:
        return self.models_dir / "plots"

    @property
    def keras_model(self) -> Path:
        """Trained Keras model (weights and the fixed feature constants)."""
        return self.models_dir / "sentinel.keras"

    @property
    def onnx_model(self) -> Path:
        """The same model exported to ONNX, batch 1 (the circuit's source)."""
        return self.models_dir / "sentinel.onnx"

    @property
    def model_card(self) -> Path:
        """Model card JSON: config, seeds, data hash, versions, metrics, thresholds."""
        return self.models_dir / "model_card.json"

    @property
    def evaluation(self) -> Path:
        """The model's fresh-episode evaluation (``sentinel evaluate --fresh --json``), kept with the model: the
        promotion check compares a candidate's with production's."""
        return self.models_dir / "evaluation.json"

    @property
    def history_plot(self) -> Path:
        return self.plots_dir / "training_history.png"

    @property
    def risk_plot(self) -> Path:
        return self.plots_dir / "risk_test_episodes.png"

    # --- circuit -----------------------------------------------------------
    @property
    def circuits_dir(self) -> Path:
        return self.root / self.circuits

    def batch(self) -> ArtifactLayout:
        """The layout of the batch circuit set (K windows per proof): same root, circuits in ``circuits/batch``."""
        return dataclasses.replace(self, circuits="circuits/batch")

    def for_market(self, market: str) -> ArtifactLayout:
        """The layout whose proof bundles go to ``proofs/<market>/`` (the default market's stay in ``proofs/``)."""
        from sentinel.config import DEFAULT_MARKET

        return self if market == DEFAULT_MARKET else dataclasses.replace(self, proofs=f"proofs/{market}")

    def single(self) -> ArtifactLayout:
        """The layout of the single-window circuit set (``circuits/``) of the same project."""
        return dataclasses.replace(self, circuits="circuits")

    @property
    def is_batch(self) -> bool:
        """True for the batch circuit set's layout (:meth:`batch`)."""
        return self.circuits_dir == self.batch().circuits_dir

    @property
    def circuit_onnx(self) -> Path:
        """The ONNX the batch set is compiled from (K renamed copies of :attr:`onnx_model`)."""
        return self.circuits_dir / "model.onnx"

    @property
    def circuit_settings(self) -> Path:
        return self.circuits_dir / "settings.json"

    @property
    def compiled_circuit(self) -> Path:
        return self.circuits_dir / "model.compiled"

    @property
    def vk(self) -> Path:
        return self.circuits_dir / "vk.key"

    @property
    def pk(self) -> Path:
        """Proving key: hundreds of MB, never committed, regenerated from the SRS on demand."""
        return self.circuits_dir / "pk.key"

    def test_srs(self, logrows: int) -> Path:
        """Locally generated SRS (``ezkl.gen_srs``): TEST ONLY, its toxic waste was not destroyed."""
        return self.circuits_dir / f"kzg-TEST-ONLY-k{logrows}.srs"

    @property
    def calibration_data(self) -> Path:
        return self.circuits_dir / "calibration.json"

    @property
    def verifier_sol(self) -> Path:
        return self.circuits_dir / "Halo2Verifier.sol"

    @property
    def verifier_artifact(self) -> Path:
        """ABI, creation code and runtime code of the compiled verifier."""
        return self.circuits_dir / "Halo2Verifier.json"

    @property
    def circuit_manifest(self) -> Path:
        return self.circuits_dir / "manifest.json"

    def proof_bundle(self, window_id: int) -> Path:
        return self.proofs_dir / f"window-{window_id}.json"

    def batch_bundle(self, first_id: int, last_id: int) -> Path:
        """One batch proof bundle: consecutive windows ``first_id``..``last_id`` in one proof."""
        return self.proofs_dir / f"batch-{first_id}-{last_id}.json"

    def newest_bundle(self, vk_sha256: str, pattern: str = "window-*.json") -> Path | None:
        """The most recently written proof bundle under proofs/ proven with this vk (``pattern``: single-window
        bundles by default, ``batch-*.json`` for batch ones), or None."""
        import json

        bundles = [p for p in self.proofs_dir.glob(pattern) if not p.name.endswith(".attestation.json")]
        for path in sorted(bundles, key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                model = json.loads(path.read_text(encoding="utf-8")).get("model")
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            if isinstance(model, dict) and model.get("vk_sha256") == vk_sha256:
                return path
        return None

    def attestation(self, window_id: int) -> Path:
        """Attester signatures over a window (``sentinel attest``), beside its proof bundle."""
        return self.proofs_dir / f"window-{window_id}.attestation.json"

    # --- contracts and chain -------------------------------------------------
    @property
    def contracts_dir(self) -> Path:
        """Solidity sources: the project's ``contracts/``, else the ones shipped with Sentinel."""
        own = self.root / "contracts"
        return own if own.is_dir() else Path(__file__).resolve().parents[1] / "contracts"

    @property
    def breaker_source(self) -> Path:
        """The published SentinelBreaker source the auditor compiles (ABI, and code to compare on chain)."""
        return self.contracts_dir / "SentinelBreaker.sol"

    @property
    def chain_dir(self) -> Path:
        """The local Anvil's log, state dump and description, pid included (``sentinel chain up``)."""
        return self.state_dir / "chain"

    @property
    def anvil_info(self) -> Path:
        """JSON: port, RPC URL, pid, chain id, start time of the running local Anvil."""
        return self.chain_dir / "anvil.json"

    @property
    def anvil_log(self) -> Path:
        return self.chain_dir / "anvil.log"

    @property
    def anvil_state(self) -> Path:
        """Anvil's state dump: the local chain survives `chain down` / `chain up`."""
        return self.chain_dir / "state.json"

    @property
    def deployments(self) -> Path:
        """Addresses, chain id, bytecode hashes and blocks of the deployed contracts."""
        return self.state_dir / "deployments.json"

    # --- relay ---------------------------------------------------------------
    @property
    def relay_dir(self) -> Path:
        """The relay daemon's queue and proof bundles (``sentinel relay``)."""
        return self.state_dir / "relay"

    @property
    def relay_db(self) -> Path:
        """SQLite (WAL) queue of windows, transactions and quarantined rows."""
        return self.relay_dir / "queue.sqlite"

    # --- attester ------------------------------------------------------------
    @property
    def attester_dir(self) -> Path:
        """An attester service's state (``sentinel attester serve``)."""
        return self.state_dir / "attester"

    @property
    def attester_record(self) -> Path:
        """SQLite (WAL) record of every attestation this party signed: it never signs a window twice."""
        return self.attester_dir / "signed.sqlite"

    # --- runtime state (never committed) -------------------------------------
    @property
    def state_dir(self) -> Path:
        """Per-machine state: chain, relay queue, logs."""
        return self.root / ".sentinel"

    @property
    def proofs_dir(self) -> Path:
        return self.root / self.proofs

    def ensure(self, *dirs: Path) -> None:
        """Create the given directories (and parents) if missing."""
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)


def read_json_artifact(path: Path, what: str, make: str, error: type[Exception]) -> dict[str, Any]:
    """Load a JSON artifact (an object); a missing one raises ``error`` saying to run ``make``."""
    import json

    if not path.exists():
        raise error(f"{path}: no {what}; run `{make}` first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: unreadable {what}: {exc}") from exc
    if not isinstance(doc, dict):
        raise error(f"{path}: unreadable {what}: a JSON {type(doc).__name__}, not an object")
    return doc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it over ``target`` on success.

    On any exception the temp file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temp name keeps the target's suffix: some writers (Keras) insist on it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` all at once or not at all."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` all at once or not at all."""
    atomic_write_bytes(target, text.encode("utf-8"))
