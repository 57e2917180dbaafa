"""Configuration precedence: defaults < sentinel.toml < SENTINEL_* env < overrides."""

from __future__ import annotations

import pytest

from sentinel.config import SOURCES, DataConfig, Source, load_config, resolve_config
from sentinel.errors import ConfigError


def test_defaults(tmp_path):
    assert load_config(tmp_path, env={}).data == DataConfig()


def test_precedence(tmp_path):
    (tmp_path / "sentinel.toml").write_text("[data]\ncadence_seconds = 30\nmax_gap_factor = 2.0\n")
    cfg = load_config(tmp_path, env={})
    assert (cfg.data.cadence_seconds, cfg.data.max_gap_factor) == (30.0, 2.0)
    cfg = load_config(tmp_path, env={"SENTINEL_DATA__CADENCE_SECONDS": "45"})
    assert (cfg.data.cadence_seconds, cfg.data.max_gap_factor) == (45.0, 2.0)
    cfg = load_config(
        tmp_path,
        {"data.cadence_seconds": 10, "data.max_gap_factor": None},
        env={"SENTINEL_DATA__CADENCE_SECONDS": "45"},
    )
    assert (cfg.data.cadence_seconds, cfg.data.max_gap_factor) == (10.0, 2.0)


def test_config_file_from_env(tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("[data]\nblr_rel_tolerance = 0.02\n")
    assert load_config(tmp_path, env={"SENTINEL_CONFIG": str(other)}).data.blr_rel_tolerance == 0.02
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path, env={"SENTINEL_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(("toml", "fragment"), [
    ("[data]\ncadence = 3\n", "unknown setting 'data.cadence'"),
    ("[nope]\nx = 1\n", "unknown section 'nope'"),
    ("[data]\ncadence_seconds = 'fast'\n", "could not convert string to float"),
    ("[data]\ncadence_seconds = -1\n", "data.cadence_seconds must be >= 0"),
    ("[data\n", "cannot read configuration"),
    ("[model]\nfeature_clip = 0.0\n", "model.feature_clip must be > 0 while model.preactivation_bound is set"),
    ("[model]\npreactivation_bound = -1.0\n", "must be >= 0"),
    ("[model]\noutput_bound = 20.0\n", r"model.output_bound must be <= model.preactivation_bound .*: 20 > 15"),
    ("[model]\npreactivation_bound = 0.0\noutput_bound = 5.0\n",
     "model.output_bound must be 0 while model.preactivation_bound is 0"),
    ("[model]\nactivations = \"relu\"\n", "model.activations must be 'smooth' or 'hard', not 'relu'"),
    ("[model]\nactivations = \"hard\"\nfinetune_learning_rate = 0.0\n",
     "model.preactivation_bound must be 0 for a hard model trained from scratch"),
    ("[model]\nfinetune_learning_rate = -0.001\n", "model.finetune_learning_rate must be >= 0"),
    ("[circuit]\nlookup_columns = 0\n", "lookup_columns must be >= 1"),
    ("[model]\npooling = '50:50'\n",
     r"model.pooling '50:50' gives 1 step; steps must be at least 2 \(the first is the baseline\)"),
    ("[relay]\nbase_fee_multiplier = 1.0\n", r"relay.base_fee_multiplier must be >= 1.125"),
    ("[relay]\nmax_priority_fee_gwei = 0.0\n", "relay.max_priority_fee_gwei must be > 0"),
    ("[relay]\npriority_fee_gwei = 5.0\n", "relay.priority_fee_gwei must be <= relay.max_priority_fee_gwei"),
    ("[relay]\nfuture_skew_seconds = -1.0\n", "relay.future_skew_seconds must be >= 0"),
    ("[relay]\nprove_timeout_seconds = 0.0\n", "relay.prove_timeout_seconds must be > 0, got 0"),
    ("[relay]\nrpc_urls = ['http://a.example', 'ws://b.example/KEY']\n",
     r"relay.rpc_urls\[1\] must be an http\(s\) URL, got 'ws://b.example'$"),
    ("[relay]\nrpc_urls = ['http://a.example/KEY', 'http://b.example', 'http://a.example/KEY/']\n",
     r"relay.rpc_urls: http://a.example appears twice \(each endpoint must be listed once\)"),
    ("[relay]\nrpc_max_lag_blocks = 0\n", "relay.rpc_max_lag_blocks must be >= 1, got 0"),
    ("[relay]\nrpc_recheck_seconds = 0.0\n", "relay.rpc_recheck_seconds must be > 0, got 0"),
])
def test_bad_config_is_named(tmp_path, toml, fragment):
    (tmp_path / "sentinel.toml").write_text(toml)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_config(tmp_path, env={})
    assert "sentinel.toml" in str(info.value) or "must be" in str(info.value)


def test_bad_env_is_named(tmp_path):
    with pytest.raises(ConfigError, match="environment SENTINEL_DATA__MAX_GAP_FACTOR"):
        load_config(tmp_path, env={"SENTINEL_DATA__MAX_GAP_FACTOR": "wide"})


def test_every_setting_is_documented(tmp_path):
    settings = resolve_config(tmp_path, env={}).settings()
    assert settings and all(s.doc for s in settings)


def test_each_value_names_its_source(tmp_path):
    """Every layer is recorded where it wins, and only there."""
    (tmp_path / "sentinel.toml").write_text("[data]\ncadence_seconds = 30\nmax_gap_factor = 2.0\n[model]\nunits = 6\n")
    env = {"SENTINEL_DATA__CADENCE_SECONDS": "45", "SENTINEL_CHAIN__PORT": "9000", "SENTINEL_ATTESTER_KEYS": "x"}
    resolved = resolve_config(tmp_path, {"data.cadence_seconds": 10, "model.epochs": 5, "model.seed": None}, env=env)
    sources = resolved.sources
    toml = str(tmp_path / "sentinel.toml")
    assert sources["data.cadence_seconds"] == Source("flag")  # file < env < flag: the flag wins
    assert sources["model.epochs"] == Source("flag")
    assert sources["chain.port"] == Source("env", "SENTINEL_CHAIN__PORT")
    assert sources["data.max_gap_factor"] == Source("file", toml)
    assert sources["model.units"] == Source("file", toml)
    assert sources["model.seed"] == Source("default")  # a None flag falls through
    assert sources["data.feed"] == Source("default")
    settings = {s.name: s for s in resolved.settings()}
    assert set(settings) == set(sources)
    assert (settings["data.cadence_seconds"].value, settings["chain.port"].value, settings["model.units"].value,
            settings["model.epochs"].value) == (10.0, 9000, 6, 5)
    assert settings["model.seed"].value == resolved.config.model.seed
    assert {s.source.kind for s in settings.values()} == set(SOURCES)
    assert resolved.file == tmp_path / "sentinel.toml"


def test_env_over_file_is_recorded_as_env(tmp_path):
    (tmp_path / "sentinel.toml").write_text("[data]\ncadence_seconds = 30\n")
    resolved = resolve_config(tmp_path, env={"SENTINEL_DATA__CADENCE_SECONDS": "45"})
    assert resolved.config.data.cadence_seconds == 45.0
    assert resolved.sources["data.cadence_seconds"] == Source("env", "SENTINEL_DATA__CADENCE_SECONDS")


@pytest.mark.parametrize(("raw", "fragment"), [(True, "not a number: True"), ("3.5", "invalid literal for int")])
def test_an_integer_setting_refuses_booleans_and_fractions(tmp_path, raw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(tmp_path, {"model.units": raw}, env={})


def test_the_default_feed_is_a_provable_committed_sample():
    """data.feed's default is in the repository, valid, longer than a window and inside the default
    circuit's input range: prove, score and attest read it when no --data is given."""
    from pathlib import Path

    from sentinel.artifacts import ArtifactLayout
    from sentinel.config import parse_scales
    from sentinel.data.io import read_market_csv
    from sentinel.zk.prove import InputRange

    root = Path(__file__).resolve().parents[2]
    config = load_config(root, env={})
    market = read_market_csv(ArtifactLayout(root).feed(DataConfig().feed), config.data)
    assert len(market) >= config.model.window
    circuit = config.circuit
    scales = parse_scales(circuit.scales)
    assert scales, "the default circuit names its scales"
    InputRange(circuit.decomp_base, circuit.decomp_legs, max(scales)).check(market.features(), 0)
