"""Configuration precedence: defaults < sentinel.toml < SENTINEL_* env < overrides."""

from __future__ import annotations

import pytest

from sentinel.config import DataConfig, describe, load_config
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


@pytest.mark.parametrize("toml,fragment", [
    ("[data]\ncadence = 3\n", "unknown setting 'data.cadence'"),
    ("[nope]\nx = 1\n", "unknown section 'nope'"),
    ("[data]\ncadence_seconds = 'fast'\n", "could not convert string to float"),
    ("[data]\ncadence_seconds = -1\n", "data.cadence_seconds must be >= 0"),
    ("[data\n", "cannot read configuration"),
    ("[model]\nfeature_clip = 0.0\n", "model.feature_clip must be > 0 while model.preactivation_bound is set"),
    ("[model]\npreactivation_bound = -1.0\n", "must be >= 0"),
    ("[model]\noutput_bound = 20.0\n", r"model.output_bound must be <= model.preactivation_bound .*: 20 > 15"),
    ("[model]\npreactivation_bound = 0.0\noutput_bound = 5.0\n", "model.output_bound must be 0 while model.preactivation_bound is 0"),
    ("[model]\nactivations = \"relu\"\n", "model.activations must be 'smooth' or 'hard', not 'relu'"),
    ("[model]\nactivations = \"hard\"\nfinetune_learning_rate = 0.0\n",
     "model.preactivation_bound must be 0 for a hard model trained from scratch"),
    ("[model]\nfinetune_learning_rate = -0.001\n", "model.finetune_learning_rate must be >= 0"),
    ("[circuit]\nlookup_columns = 0\n", "lookup_columns must be >= 1"),
    ("[model]\npooling = '50:50'\n", r"model.pooling '50:50' gives 1 step; steps must be at least 2 \(the first is the baseline\)"),
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
    rows = describe(load_config(tmp_path, env={}))
    assert rows and all(doc for _, _, doc in rows)
