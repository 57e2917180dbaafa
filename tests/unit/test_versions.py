"""Model versions: content ids, the sets Sentinel knows, adding one, and finding the one a verifier's code is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.config import load_config
from sentinel.errors import ConfigError, ModelError
from sentinel.versions import add_version, find_version, for_verifier_code, known_versions, read_version, version_id


def _set(root: Path, model: bytes, runtime: bytes | None = None, *, batch: bytes | None = None) -> ArtifactLayout:
    """A project-like artifact set: an ONNX file (any bytes: versions only hash it), a card and, with ``runtime``,
    a circuit manifest naming that verifier code (and a batch one)."""
    layout = ArtifactLayout(root)
    layout.ensure(layout.models_dir)
    layout.onnx_model.write_bytes(model)
    layout.model_card.write_text(json.dumps({"trained_at": "2026-11-27T00:00:00Z"}))
    if runtime is not None:
        layout.ensure(layout.circuits_dir)
        manifest = {"verifier_runtime_sha256": hashlib.sha256(runtime).hexdigest(),
                    "artifacts": {"onnx": {"sha256": hashlib.sha256(model).hexdigest()}}}
        if batch is not None:
            manifest["batch"] = {"windows": 2}
            layout.ensure(layout.batch().circuits_dir)
            layout.batch().circuit_manifest.write_text(
                json.dumps({"verifier_runtime_sha256": hashlib.sha256(batch).hexdigest()}))
        layout.circuit_manifest.write_text(json.dumps(manifest))
        (layout.circuits_dir / "pk.key").write_bytes(b"key" * 100)
    return layout


def test_the_id_is_the_onnx_content(tmp_path: Path) -> None:
    a = read_version(_set(tmp_path / "a", b"model one"), "project")
    b = read_version(_set(tmp_path / "b", b"model one"), "project")
    c = read_version(_set(tmp_path / "c", b"model two"), "project")
    assert a.id == b.id == version_id(hashlib.sha256(b"model one").hexdigest())
    assert a.id != c.id and a.id.startswith("v-") and len(a.id) == 14
    assert not a.built and a.trained_at == "2026-11-27T00:00:00Z"


def test_a_circuit_built_from_another_model_is_not_the_versions(tmp_path: Path) -> None:
    layout = _set(tmp_path, b"new model", b"code")
    manifest = json.loads(layout.circuit_manifest.read_text())
    manifest["artifacts"]["onnx"]["sha256"] = hashlib.sha256(b"old model").hexdigest()
    layout.circuit_manifest.write_text(json.dumps(manifest))
    assert not read_version(layout, "project").built  # retrained since: its circuit is stale


def test_no_model_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no trained model \(models/sentinel\.onnx is missing\)"):
        read_version(ArtifactLayout(tmp_path), "versions")


def test_known_versions_and_the_one_a_verifier_runs(tmp_path: Path) -> None:
    _set(tmp_path, b"production", b"prod code", batch=b"prod batch")
    (tmp_path / "sentinel.toml").write_text("")
    project = ArtifactLayout(tmp_path)
    candidate = add_version(project, _set(tmp_path / "elsewhere", b"candidate", b"cand code").root)
    assert candidate.layout.root == tmp_path / "versions" / candidate.id
    assert (candidate.layout.circuits_dir / "pk.key").read_bytes() == b"key" * 100
    assert not list((tmp_path / "versions").glob(".*"))  # no staging left behind
    again = add_version(project, tmp_path / "elsewhere")  # idempotent
    assert again.id == candidate.id

    versions = known_versions(load_config(tmp_path, env={}), project)
    assert [v.origins for v in versions] == [("project",), ("versions",)]
    production = versions[0]
    assert production.batch_runtime_sha256 == hashlib.sha256(b"prod batch").hexdigest()
    assert for_verifier_code(versions, b"cand code") == candidate
    assert for_verifier_code(versions, b"prod code") == production
    assert for_verifier_code(versions, b"prod batch") is None  # the single-window verifier names a version
    assert find_version(versions, candidate.id).id == candidate.id
    with pytest.raises(ConfigError, match="version 'v-' matches several"):
        find_version(versions, "v-")
    with pytest.raises(ConfigError, match="version 'v-nothing' is not one of the known artifact sets"):
        find_version(versions, "v-nothing")


def test_a_market_sharing_a_version_is_listed_once_with_both_origins(tmp_path: Path) -> None:
    _set(tmp_path, b"same")
    _set(tmp_path / "btc", b"same", b"code")
    (tmp_path / "sentinel.toml").write_text('[markets.btc]\nartifacts = "btc"\n')
    versions = known_versions(load_config(tmp_path, env={}), ArtifactLayout(tmp_path))
    assert len(versions) == 1
    assert versions[0].origins == ("project", "market btc")
    assert versions[0].built and versions[0].layout.root == tmp_path / "btc"  # the built copy is the one used


def test_adding_over_a_directory_holding_another_model_is_refused(tmp_path: Path) -> None:
    project = ArtifactLayout(tmp_path)
    source = _set(tmp_path / "src", b"a model")
    version = read_version(source, "source")
    _set(tmp_path / "versions" / version.id, b"something else")
    with pytest.raises(ConfigError, match="not the version its name says"):
        add_version(project, source.root)
