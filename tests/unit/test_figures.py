"""The figures tables in README.md and docs/ match the benchmark JSON they are rendered from."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_figures", ROOT / "scripts" / "render_figures.py")
    assert spec is not None and spec.loader is not None  # a .py path always gets a spec with a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


figures = _load()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """README, docs pages, benchmark JSON and model card of the repo, in a temp project."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    for path in (ROOT / "docs").iterdir():
        if path.suffix in (".md", ".json"):
            shutil.copy(path, tmp_path / "docs" / path.name)
    shutil.copy(ROOT / "models" / "model_card.json", tmp_path / "models" / "model_card.json")
    return tmp_path


def test_committed_tables_match_their_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert figures.main(["--check"], root=ROOT) == 0, capsys.readouterr().err


def test_readme_and_benchmarks_hold_the_headline_table() -> None:
    for rel in ("README.md", "docs/benchmarks.md"):
        text = (ROOT / rel).read_text()
        assert "<!-- figures:headline -->" in text and "<!-- /figures:headline -->" in text, rel
    gas = json.loads((ROOT / figures.SOURCES["chain"]).read_text())["submit_gas"]
    assert f"{gas:,}" in (ROOT / "README.md").read_text()


def test_check_names_file_and_figure_of_a_tampered_readme(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = copy / "README.md"
    gas = json.loads((copy / figures.SOURCES["chain"]).read_text())["submit_gas"]
    text = readme.read_text()
    assert text.count(f"{gas:,} (target") == 1
    readme.write_text(text.replace(f"{gas:,} (target", f"{gas - 1:,} (target"))

    assert figures.main(["--check"], root=copy) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("README.md: figure '`submit` gas, verification included'")
    assert f"{gas - 1:,}" in err and f"{gas:,}" in err

    assert figures.main([], root=copy) == 0  # rendering restores the committed text
    assert readme.read_text() == text
    assert figures.main(["--check"], root=copy) == 0


def test_check_catches_a_changed_source(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy / figures.SOURCES["bench"]
    data = json.loads(source.read_text())
    data["default"]["prove_seconds_median"] += 1.0
    source.write_text(json.dumps(data))

    assert figures.main(["--check"], root=copy) == 1
    err = capsys.readouterr().err
    assert "figure 'prove, median / p95" in err and "docs/seed-bench" in err


def test_docs_pages_are_checked_too(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = copy / "docs" / "benchmarks.md"
    text = page.read_text()
    pk = json.loads((copy / figures.SOURCES["bench"]).read_text())["default"]["pk_bytes"]
    shown = f"{pk / 1e6:,.0f} MB"
    assert shown in text
    page.write_text(text.replace(shown, "1 MB"))

    assert figures.main(["--check"], root=copy) == 1
    assert capsys.readouterr().err.startswith("docs/benchmarks.md: figure 'proving key")


def test_missing_marker_or_source_cannot_run(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = copy / "README.md"
    readme.write_text(readme.read_text().replace("<!-- /figures:headline -->", ""))
    assert figures.main(["--check"], root=copy) == 2
    assert "README.md" in capsys.readouterr().err

    shutil.copy(ROOT / "README.md", readme)
    (copy / figures.SOURCES["audit"]).unlink()
    assert figures.main(["--check"], root=copy) == 2
    assert figures.SOURCES["audit"] in capsys.readouterr().err


def test_the_fresh_detection_table_follows_its_json(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy / figures.SOURCES["fresh"]
    data = json.loads(source.read_text())
    flash = data["detectors"]["lstm"]["families"]["flash"]
    assert f"({flash['detected']}/{flash['events']};" in (copy / "docs" / "model.md").read_text()
    flash["detected"] -= 1
    source.write_text(json.dumps(data))

    assert figures.main(["--check"], root=copy) == 1
    err = capsys.readouterr().err
    assert err.startswith("docs/model.md: figure 'fresh: **LSTM**'") and "detection-fresh-" in err


def test_the_gas_sweep_table_follows_its_json(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy / figures.SOURCES["sweep"]
    data = json.loads(source.read_text())
    k4 = next(v for v in data["variants"] if v["variant"] == "batch_k4")
    assert f"| {k4['verify_tx_gas_per_window']:,} (-75 %) |" in (copy / "docs" / "contracts.md").read_text()
    k4["verify_tx_gas_per_window"] += 1_000
    source.write_text(json.dumps(data))

    assert figures.main(["--check"], root=copy) == 1
    err = capsys.readouterr().err
    assert err.startswith("docs/contracts.md: figure '`batch_k4`: 4 windows") and "137,902" in err


def test_an_unfinished_gas_sweep_cannot_be_rendered(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy / figures.SOURCES["sweep"]
    data = json.loads(source.read_text())
    data["complete"] = False
    source.write_text(json.dumps(data))

    assert figures.main(["--check"], root=copy) == 2
    assert "did not finish" in capsys.readouterr().err
