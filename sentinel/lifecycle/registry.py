"""The versions Sentinel knows, what each was measured at and which breaker runs it (``sentinel models``).

A version's figures are its own ``models/evaluation.json`` (``sentinel models
evaluate``). Which markets run it is read from the chain, never from a
setting: each breaker's ``verifier()``, its runtime code, and the version
whose circuit rendered that code (:func:`sentinel.versions.for_verifier_code`);
a proposed verifier (``pendingVerifier``) is named with the time it may be
executed. When the node does not answer, the listing still stands: it says so
in one line and names the version each market was deployed with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, atomic_write_text
from sentinel.config import SentinelConfig, resolve_config
from sentinel.errors import ChainError
from sentinel.versions import Version, for_verifier_code, known_versions


def set_config(root: Path, project: Path, overrides: dict[str, Any] | None = None) -> SentinelConfig:
    """The settings an artifact set was made with: its own ``sentinel.toml`` when it has one, else the project's
    (with the same ``--set`` overrides)."""
    own = root / "sentinel.toml"
    return resolve_config(root if own.is_file() else project, overrides).config


def evaluation_summary(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figures a listing shows of an ``evaluate --fresh --json`` document: episodes, the LSTM's recall per
    family, false trips per 10k healthy rows and median lead (None: not evaluated)."""
    if doc is None:
        return None
    lstm = (doc.get("detectors") or {}).get("lstm") or {}
    families = {name: fam.get("recall") for name, fam in sorted((lstm.get("families") or {}).items())}
    return {
        "seed": doc.get("seed"), "episodes": doc.get("episodes"), "calibrated_to": doc.get("calibrated_to"),
        "date": doc.get("date"), "recall": families,
        "false_trips_per_10k": (lstm.get("false_trips") or {}).get("per_10k"),
        "median_lead_rows": (lstm.get("lead_rows") or {}).get("median"),
    }


def circuit_summary(version: Version) -> dict[str, Any] | None:
    """logrows and the verifier's runtime sha256 of a built version (None when its circuit is not built)."""
    if not version.built:
        return None
    try:
        manifest = json.loads(version.layout.circuit_manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    return {"logrows": (manifest.get("circuit") or {}).get("logrows"),
            "verifier_runtime_sha256": version.verifier_runtime_sha256,
            "batch_runtime_sha256": version.batch_runtime_sha256}


@dataclass(frozen=True)
class MarketUse:
    """One deployed market and the version its breaker runs (read on chain, or the deployment record's)."""

    market: str
    breaker: str
    source: str  #: "chain" (read now) or "deployment record" (the node did not answer)
    verifier: str | None = None  #: the breaker's verifier address (chain only)
    verifier_runtime_sha256: str | None = None
    version: str | None = None  #: the version whose verifier that code is; None: none known
    pending_verifier: str | None = None
    pending_version: str | None = None
    pending_eta: int | None = None  #: unix time after which the proposal may be executed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pending_eta_utc": utc(self.pending_eta) if self.pending_eta else None}


@dataclass(frozen=True)
class Listing:
    """Every known version and, when something is deployed, which market's breaker runs which."""

    versions: list[Version]
    markets: list[MarketUse] = field(default_factory=list)
    deployed: bool = False
    chain_note: str | None = None  #: one line when the node did not answer

    def running(self, version: Version) -> list[MarketUse]:
        return [m for m in self.markets if m.version == version.id]

    def proposed(self, version: Version) -> list[MarketUse]:
        return [m for m in self.markets if m.pending_version == version.id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": [{
                "id": v.id, "origins": list(v.origins), "path": str(v.layout.root), "onnx_sha256": v.onnx_sha256,
                "trained_at": v.trained_at, "circuit": circuit_summary(v),
                "evaluation": evaluation_summary(v.evaluation),
                "running_on": [m.market for m in self.running(v)],
                "proposed_on": [{"market": m.market, "executable_after": utc(m.pending_eta)}
                                for m in self.proposed(v)],
            } for v in self.versions],
            "deployed": self.deployed,
            "markets": [m.to_dict() for m in self.markets],
            "chain_note": self.chain_note,
        }


def utc(unix: int | None) -> str | None:
    """An ISO-8601 UTC time of ``unix`` seconds."""
    return None if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_versions(config: SentinelConfig, layout: ArtifactLayout, rpc: str | None = None) -> Listing:
    """Every known version, with the markets whose breaker runs (or is proposed to run) each. Never fails because
    the chain is down: the deployment record stands in, with a note."""
    versions = known_versions(config, layout)
    if not layout.deployments.exists():
        return Listing(versions)
    from sentinel.chain.deploy import load_deployments

    deployments = load_deployments(layout)
    uses: list[MarketUse] = []
    note = None
    down: set[str] = set()  # endpoints that did not answer: not asked again for the next market
    for deployment in deployments.markets.values():
        url = rpc or deployment.rpc_url
        try:
            if url in down:
                raise ChainError(f"{url}: did not answer")
            uses.append(_on_chain(deployment, config, versions, rpc))
        except ChainError as exc:
            down.add(url)
            note = note or f"the chain did not answer ({exc}); markets show the version they were deployed with"
            uses.append(_recorded(deployment, versions))
    return Listing(versions, uses, deployed=True, chain_note=note)


def _recorded(deployment: Any, versions: list[Version]) -> MarketUse:
    from sentinel.chain.breaker import BREAKER

    sha = (deployment.circuit or {}).get("verifier_runtime_sha256")
    version = next((v.id for v in versions if sha and v.verifier_runtime_sha256 == sha), None)
    return MarketUse(deployment.market, deployment.address(BREAKER), "deployment record",
                     verifier_runtime_sha256=sha, version=version)


def _on_chain(deployment: Any, config: SentinelConfig, versions: list[Version], rpc: str | None) -> MarketUse:
    import hashlib

    from sentinel.chain.breaker import BREAKER, connect, contract

    chain = connect(deployment, config, rpc)
    breaker = contract(chain, deployment, BREAKER)
    verifier = str(chain.call(breaker.functions.verifier(), "verifier"))
    code = chain.code(verifier)
    running = for_verifier_code(versions, code)
    pending = str(chain.call(breaker.functions.pendingVerifier(), "pendingVerifier"))
    pending_version = eta = None
    if int(pending, 16) != 0:
        found = for_verifier_code(versions, chain.code(pending))
        pending_version = found.id if found else None
        eta = int(chain.call(breaker.functions.pendingVerifierEta(), "pendingVerifierEta"))
    return MarketUse(deployment.market, deployment.address(BREAKER), "chain", verifier,
                     hashlib.sha256(code).hexdigest(), running.id if running else None,
                     None if int(pending, 16) == 0 else pending, pending_version, eta)


def fresh_defaults(layout: ArtifactLayout) -> dict[str, Any]:
    """seed, episodes and calibration of the project's own evaluation (production's, ``models/evaluation.json``),
    so that every version evaluated by default is evaluated on the same episodes; empty when there is none."""
    try:
        doc = json.loads(layout.evaluation.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("kind") != "fresh":
        return {}
    return {"seed": doc.get("seed"), "episodes": doc.get("episodes"), "like": doc.get("calibrated_to")}


def evaluate_version(version: Version, config: SentinelConfig, layout: ArtifactLayout, *, episodes: int | None = None,
                     seed: int | None = None, like: Path | None = None,
                     progress: Any = None) -> dict[str, Any]:
    """``evaluate --fresh`` of ``version``, written atomically to its ``models/evaluation.json``. Unset
    ``episodes``/``seed``/``like`` default to the project's own evaluation's (:func:`fresh_defaults`)."""
    from sentinel.model.pipeline import run_fresh_evaluation

    defaults = fresh_defaults(layout)
    episodes = defaults.get("episodes") if episodes is None else episodes
    seed = defaults.get("seed") if seed is None else seed
    if like is None and defaults.get("like"):
        like = Path(defaults["like"])
    result = run_fresh_evaluation(version.layout, config, episodes, seed, None, progress, like=like)
    atomic_write_text(version.layout.evaluation, json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def build_version(version: Version, config: SentinelConfig, *, srs: Path | None = None, force: bool = False,
                  progress: Any = None) -> Any:
    """Build ``version``'s circuit in its own directory (``config``: its settings, :func:`set_config`)."""
    from sentinel.zk.build import build_circuit

    return build_circuit(version.layout, config, srs, force=force, progress=progress)
