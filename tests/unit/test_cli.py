"""The ``sentinel`` command: exit codes, messages, and nothing written on error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    code, stdout, _ = run_cli("data", "generate", "--out", tmp_path / "g.csv", "--episodes", "20", "--like", real,
                              "--json")
    assert code == 0
    calibration = json.loads(stdout)["calibration"]
    assert all(row["ok"] for row in calibration.values()), calibration


def test_generate_varies_markets_as_model_vary_market_says(run_cli, tmp_path):
    from sentinel.data.io import market_csv_bytes
    from sentinel.data.synthetic import RANGES, generate

    default, one = tmp_path / "default.csv", tmp_path / "one.csv"
    code, stdout, _ = run_cli("data", "generate", "--out", default, "--episodes", "6", "--seed", "3", "--json")
    assert code == 0 and json.loads(stdout)["vary_market"] is True  # model.vary_market, on by default for ranges
    assert default.read_bytes() == market_csv_bytes(generate(6, 3, scenarios=RANGES, vary_market=True))
    code, stdout, _ = run_cli("data", "generate", "--out", one, "--episodes", "6", "--seed", "3", "--one-market")
    assert code == 0 and "varied markets" not in stdout
    assert one.read_bytes() == market_csv_bytes(generate(6, 3, scenarios=RANGES))
    code, _, err = run_cli("data", "generate", "--out", tmp_path / "c.csv", "--scenarios", "classic", "--vary-market")
    assert code == 1 and "varied healthy markets belong to the 'ranges' scenario space, not 'classic'" in err
    assert not (tmp_path / "c.csv").exists()


def test_validate_ok(run_cli, tmp_path):
    out = tmp_path / "s.csv"
    run_cli("data", "generate", "--out", out, "--episodes", "3")
    code, stdout, _ = run_cli("data", "validate", out)
    assert code == 0
    assert stdout.startswith(f"ok: {out}")


def _crawler_file(tmp_path, edit):
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
    def drop_price(rows):
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
    done = subprocess.run([sys.executable, "-m", "sentinel", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Usage: sentinel" in done.stdout


def test_bench_refuses_a_non_positive_memory_cap_before_any_work(run_cli, tmp_path):
    code, _, stderr = run_cli("--root", tmp_path, "bench", "--against", "seed", "--memory-cap-gb", "0")
    assert code == 2
    assert "--memory-cap-gb" in stderr and "must be > 0" in stderr
    assert list(tmp_path.iterdir()) == []


# --- commands work as typed: the data.feed default ---------------------------------------------


def test_feed_commands_default_to_the_data_feed_setting_in_help(run_cli):
    for args in (["prove"], ["score"], ["attest"], ["relay", "run"], ["relay", "once"]):
        code, out, _ = run_cli(*args, "--help")
        assert code == 0
        assert "[default: the data.feed setting, data/sample_market_depth.csv]" in " ".join(out.split()), args


def test_prove_reads_the_data_feed_setting_relative_to_the_root(run_cli, tmp_path):
    """With no --data, prove reads data.feed under --root (and validates it before building anything)."""
    (tmp_path / "sentinel.toml").write_text('[data]\nfeed = "feeds/mine.csv"\n')
    code, out, err = run_cli("--root", tmp_path, "prove", "--window", "latest")
    assert code == 1 and out == ""
    assert err.strip() == (f"error: {tmp_path / 'feeds' / 'mine.csv'}: no such file (the data.feed setting) "
                           "(pass --data FILE, or set [data] feed in sentinel.toml)")
    assert not (tmp_path / "circuits").exists()


# --- verify: the newest bundle by default --------------------------------------------------------


def _fake_circuit(root, vk: str) -> None:
    (root / "circuits").mkdir()
    (root / "circuits" / "manifest.json").write_text(json.dumps({"artifacts": {"vk": {"sha256": vk}}}))


def _fake_bundle(root, window: int, vk: str, mtime: int):
    path = root / "proofs" / f"window-{window}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"window_id": window, "model": {"vk_sha256": vk}}))
    os.utime(path, (mtime, mtime))
    return path


def test_verify_without_arguments_takes_the_newest_bundle_of_this_circuit(run_cli, tmp_path):
    _fake_circuit(tmp_path, "aa" * 32)
    _fake_bundle(tmp_path, 1, "aa" * 32, 1_000)
    newest = _fake_bundle(tmp_path, 2, "aa" * 32, 2_000)
    _fake_bundle(tmp_path, 3, "bb" * 32, 3_000)  # newer, but another circuit's
    attestation = tmp_path / "proofs" / "window-4.attestation.json"
    attestation.write_text(json.dumps({"model": {"vk_sha256": "aa" * 32}}))  # newest file, not a bundle
    code, _, err = run_cli("--root", tmp_path, "verify")
    assert f"[verify] newest bundle for the current circuit: {newest}" in err.splitlines()
    assert code == 2  # found, but verification cannot run: the fake circuit has no vk


def test_verify_without_bundles_names_the_prove_command(run_cli, tmp_path):
    code, out, err = run_cli("--root", tmp_path, "verify")
    assert (code, out) == (2, "")
    assert err.strip().endswith("(run `sentinel prove --window latest`)") and len(err.strip().splitlines()) == 1
    _fake_circuit(tmp_path, "aa" * 32)
    _fake_bundle(tmp_path, 3, "bb" * 32, 3_000)
    code, _, err = run_cli("--root", tmp_path, "verify")
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'proofs'}: no proof bundle for the current circuit "
                           "(run `sentinel prove --window latest`)")


# --- exit codes ------------------------------------------------------------------------------------


def test_could_not_run_exits_2_where_1_is_a_negative_result(run_cli, tmp_path):
    (tmp_path / "sentinel.toml").write_text("[audit]\nworkers = -1\n")
    for args in (["audit", "--breaker", "0x" + "11" * 20], ["verify", tmp_path / "b.json"],
                 ["data", "validate", tmp_path / "x.csv"]):
        code, out, err = run_cli("--root", tmp_path, *args)
        assert (code, out) == (2, ""), args
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli("--root", tmp_path, "data", "generate", "--out", tmp_path / "g.csv", "--episodes", "2")
    assert code == 1 and "audit.workers" in err  # no negative result of its own: an error is 1


def test_a_missing_file_cannot_be_validated_but_an_invalid_one_is_a_result(run_cli, tmp_path):
    code, _, err = run_cli("data", "validate", tmp_path / "missing.csv")
    assert code == 2 and "file does not exist" in err
    path = _crawler_file(tmp_path, lambda rows: rows[12].__setitem__(3, "NaN"))
    assert run_cli("data", "validate", path)[0] == 1


def test_every_command_documents_its_exit_codes(run_cli):
    from sentinel.cli.main import cli

    def leaves(group, path):
        for name, command in group.commands.items():
            yield from leaves(command, [*path, name]) if hasattr(command, "commands") else [([*path, name], command)]

    verdicts = {("verify",), ("audit",), ("data", "validate"), ("retrain",), ("shadow", "check")}
    for path, _ in leaves(cli, []):
        code, out, _ = run_cli(*path, "--help")
        text = " ".join(out.split())
        assert code == 0 and "Exit codes: 0 " in text, path
        assert ("2 could not run" in text) == (tuple(path) in verdicts), path


def test_set_is_validated_as_usage(run_cli):
    code, _, err = run_cli("--set", "units=4", "config")
    assert code == 2 and "expected SECTION.KEY=VALUE" in err


# --- sentinel config -------------------------------------------------------------------------------


def test_config_reports_each_value_and_its_source(run_cli, tmp_path, monkeypatch):
    (tmp_path / "sentinel.toml").write_text("[model]\nunits = 6\nepochs = 9\n")
    monkeypatch.setenv("SENTINEL_MODEL__EPOCHS", "11")
    monkeypatch.setenv("SENTINEL_CHAIN__PORT", "9001")
    code, out, err = run_cli("--root", tmp_path, "--set", "chain.port=9002", "config", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["file"] == str(tmp_path / "sentinel.toml") and doc["file_exists"] is True
    rows = {s["name"]: s for s in doc["settings"]}
    assert (rows["model.units"]["value"], rows["model.units"]["source"], rows["model.units"]["origin"]) == (
        6, "file", str(tmp_path / "sentinel.toml"))
    assert (rows["model.epochs"]["value"], rows["model.epochs"]["source"], rows["model.epochs"]["origin"]) == (
        11, "env", "SENTINEL_MODEL__EPOCHS")
    assert (rows["chain.port"]["value"], rows["chain.port"]["source"]) == (9002, "flag")
    assert (rows["data.feed"]["value"], rows["data.feed"]["source"]) == ("data/sample_market_depth.csv", "default")
    assert all(s["doc"] for s in doc["settings"])
    code, text, _ = run_cli("--root", tmp_path, "--set", "chain.port=9002", "config")
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == f"# configuration file: {tmp_path / 'sentinel.toml'}"
    assert "model.epochs = 11  (env SENTINEL_MODEL__EPOCHS)" in lines
    assert f"model.units = 6  (file {tmp_path / 'sentinel.toml'})" in lines
    assert "chain.port = 9002  (flag)" in lines
    at = lines.index('data.feed = "data/sample_market_depth.csv"  (default)')
    assert lines[at + 1].strip() == rows["data.feed"]["doc"]


def test_config_with_a_bad_value_is_one_line(run_cli, tmp_path):
    code, out, err = run_cli("--root", tmp_path, "--set", "chain.port=0", "config")
    assert (code, out) == (1, "")
    assert err.strip() == "error: chain.port must be in 1..65535"


# --- a quiet CLI -----------------------------------------------------------------------------------


def test_native_log_records_are_filtered_and_other_lines_kept():
    from sentinel.cli.quiet import without_noise

    noisy = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795769037.712303    4326 port.cc:153] oneDNN custom operations are on.\n"
        "E0000 00:00:1795769037.712303    4326 cuda_dnn.cc:8310] Unable to register cuDNN factory\n"
        "2024-01-11 05:40:05.061907: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.\n"
    )
    assert without_noise(noisy) == ""
    kept = "error: something real\nI0000 is not a log record\n"
    assert without_noise(noisy + kept + noisy) == kept


def test_a_noisy_native_import_is_silenced_unless_verbose(tmp_path):
    """The import filter, on a stand-in module that writes to file descriptor 2 as TensorFlow does."""
    (tmp_path / "noisy_native.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 00:00:1795769037.712303    4326 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'a line that is not a log record\\n')\n"
    )
    probe = ("import sys; from sentinel.cli.quiet import quiet_native_logs; "
             "quiet_native_logs(sys.argv[1] == 'verbose', names=('noisy_native',)); import noisy_native")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}"}
    quiet = subprocess.run([sys.executable, "-c", probe, "quiet"], capture_output=True, text=True, env=env, check=True)
    assert quiet.stderr == "a line that is not a log record\n"
    loud = subprocess.run([sys.executable, "-c", probe, "verbose"], capture_output=True, text=True, env=env, check=True)
    assert "oneDNN custom operations are on" in loud.stderr and "a line that is not" in loud.stderr


@pytest.mark.parametrize(("verbose", "preset", "expected"),
                         [(False, None, "2"), (True, None, "0"), (False, "1", "1"), (True, "3", "3")])
def test_tensorflows_log_level_is_set_unless_the_environment_sets_it(monkeypatch, verbose, preset, expected):
    from sentinel.model.backend import prepare_environment

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    if preset is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", preset)
    prepare_environment(verbose=verbose)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == expected
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_attest_checks_against_the_data_feed_unless_told_not_to(run_cli, tmp_path):
    bundle = tmp_path / "window-1.json"
    bundle.write_text("{}")
    code, _, err = run_cli("--root", tmp_path, "attest", bundle)
    assert code == 1 and f"{tmp_path / 'data' / 'sample_market_depth.csv'}: no such file (the data.feed setting)" in err
    code, _, err = run_cli("--root", tmp_path, "attest", bundle, "--no-check")
    assert code == 1 and "data.feed" not in err  # past the feed: the bundle itself is refused
    code, _, err = run_cli("--root", tmp_path, "attest", bundle, "--no-check", "--data", bundle)
    assert code == 2 and "--no-check and --data are exclusive" in err


def test_bench_day_refuses_too_few_rows_in_one_line_before_any_work(run_cli, tmp_path):
    code, _, stderr = run_cli("--root", tmp_path, "bench", "--day", "--rows", "100")
    assert code == 1
    assert len(stderr.strip().splitlines()) == 1
    assert "--rows 100: the day bench needs at least 240 rows" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("modes", [("--day", "--relay"), ("--relay", "--burst"), ("--day", "--burst")])
def test_bench_relay_day_and_burst_are_exclusive(run_cli, tmp_path, modes):
    code, _, stderr = run_cli("--root", tmp_path, "bench", *modes)
    assert code == 2 and "--relay, --day and --burst are exclusive" in stderr
