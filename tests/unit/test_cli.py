"""The ``sentinel`` command: exit codes, messages, and nothing written on error."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.feeds import btc_like_rows, write_rows


def test_generate_twice_gives_identical_bytes(run_cli, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run_cli("data", "generate", "--out", a, "--seed", "7", "--episodes", "6")[0] == 0
    assert run_cli("data", "generate", "--out", b, "--seed", "7", "--episodes", "6")[0] == 0
    assert a.read_bytes() == b.read_bytes()


def test_generate_json_summary(run_cli, tmp_path):
    out = tmp_path / "s.csv"
    code, stdout, _ = run_cli("data", "generate", "--out", out, "--episodes", "5", "--families", "drain,dip", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["episodes"] == 5
    assert set(summary["by_family"]) <= {"drain", "dip"}
    assert sum(summary["by_family"].values()) == 5
    assert summary["rows"] == len(out.read_text().splitlines()) - 1


def test_generate_like_reports_calibration(run_cli, tmp_path):
    real = tmp_path / "real.csv"
    write_rows(real, btc_like_rows(rows=1500, seed=2))
    code, stdout, _ = run_cli("data", "generate", "--out", tmp_path / "g.csv", "--episodes", "20", "--like", real, "--json")
    assert code == 0
    calibration = json.loads(stdout)["calibration"]
    assert all(row["ok"] for row in calibration.values()), calibration


def test_validate_ok(run_cli, tmp_path):
    out = tmp_path / "s.csv"
    run_cli("data", "generate", "--out", out, "--episodes", "3")
    code, stdout, _ = run_cli("data", "validate", out)
    assert code == 0
    assert stdout.startswith(f"ok: {out}")


def _crawler_file(tmp_path, edit):  # noqa: ANN001, ANN202
    rows = btc_like_rows(rows=40, seed=1)
    edit(rows)
    path = tmp_path / "market_depth.csv"
    write_rows(path, rows)
    return path


def test_validate_nan_exits_1_naming_row_and_column(run_cli, tmp_path):
    path = _crawler_file(tmp_path, lambda rows: rows[12].__setitem__(3, "NaN"))
    code, stdout, stderr = run_cli("data", "validate", path)
    assert code == 1
    assert stdout == ""
    assert stderr.strip() == f"error: {path}, row 12 (line 13), column 'sell_volume': NaN is not allowed (got 'NaN')"


def test_validate_duplicate_timestamp_exits_1(run_cli, tmp_path):
    path = _crawler_file(tmp_path, lambda rows: rows[8].__setitem__(0, rows[7][0]))
    code, _, stderr = run_cli("data", "validate", path)
    assert code == 1
    assert "row 8 (line 9), column 'timestamp': duplicate timestamp" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_validate_missing_column_exits_1(run_cli, tmp_path):
    def drop_price(rows):  # noqa: ANN001, ANN202
        for row in rows:
            del row[4]

    path = _crawler_file(tmp_path, drop_price)
    code, _, stderr = run_cli("data", "validate", path)
    assert code == 1
    assert "column 'mid_price': required column is missing" in stderr


def test_ingest_writes_canonical_file(run_cli, tmp_path):
    src = _crawler_file(tmp_path, lambda rows: None)
    out = tmp_path / "clean.csv"
    code, stdout, _ = run_cli("data", "ingest", src, "--out", out, "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["rows"] == 40
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,blr,buy_volume,sell_volume,mid_price,alert_triggered"
    assert lines[1].startswith("2025-12-13T08:44:") and lines[1].split(",")[0].endswith("Z")
    # re-ingesting the canonical file is a fixed point
    again = tmp_path / "again.csv"
    assert run_cli("data", "ingest", out, "--out", again)[0] == 0
    assert again.read_bytes() == out.read_bytes()


def test_ingest_bad_file_writes_nothing_and_keeps_old_output(run_cli, tmp_path):
    src = _crawler_file(tmp_path, lambda rows: rows[5].__setitem__(1, "abc"))
    out = tmp_path / "clean.csv"
    code, _, stderr = run_cli("data", "ingest", src, "--out", out)
    assert code == 1 and "not a number: 'abc'" in stderr
    assert not out.exists()
    out.write_text("previous good content\n")
    assert run_cli("data", "ingest", src, "--out", out)[0] == 1
    assert out.read_text() == "previous good content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv", "market_depth.csv"]  # no temp files


def test_plot_writes_png(run_cli, tmp_path):
    data = tmp_path / "s.csv"
    run_cli("data", "generate", "--out", data, "--episodes", "3", "--families", "drain")
    png = tmp_path / "p.png"
    code, stdout, _ = run_cli("data", "plot", data, "--out", png, "--episode", "1")
    assert code == 0, stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_cli("data", "plot", data, "--out", tmp_path / "x.png", "--episode", "99")[0] == 1
    assert not (tmp_path / "x.png").exists()


def test_usage_error_exits_2(run_cli, tmp_path):
    code, _, stderr = run_cli("data", "generate", "--episodes", "many")
    assert code == 2
    assert "'many' is not a valid integer" in stderr


def test_bad_argument_value_exits_1(run_cli, tmp_path):
    code, _, stderr = run_cli("data", "generate", "--out", tmp_path / "x.csv", "--episodes", "0")
    assert code == 1
    assert stderr.strip() == "error: --episodes must be >= 1, got 0"
    assert not (tmp_path / "x.csv").exists()


def test_help_imports_nothing_heavy():
    """``sentinel --help`` stays instant because no heavy library loads at import."""
    probe = (
        "import sys; from sentinel.cli.main import cli; "
        "heavy = [m for m in ('tensorflow', 'ezkl', 'web3', 'pandas', 'onnx', 'matplotlib') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    done = subprocess.run([sys.executable, "-m", "sentinel", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage: sentinel" in done.stdout


def test_bench_refuses_a_non_positive_memory_cap_before_any_work(run_cli, tmp_path):
    code, _, stderr = run_cli("--root", tmp_path, "bench", "--against", "seed", "--memory-cap-gb", "0")
    assert code == 2
    assert "--memory-cap-gb" in stderr and "must be > 0" in stderr
    assert list(tmp_path.iterdir()) == []
