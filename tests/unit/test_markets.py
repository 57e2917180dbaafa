"""Markets as configuration (``[markets.<name>]`` tables, resolved by sentinel.markets) and the deployments file
that records one deployment per market (version 2; a version-1 file is the default market)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain.deploy import ContractRecord, Deployment, Deployments, load_deployment, load_deployments
from sentinel.config import DEFAULT_ASSET, DEFAULT_MARKET, MarketConfig, Source, load_config, resolve_config
from sentinel.errors import ArtifactFieldError, ChainError, ConfigError
from sentinel.markets import market, markets

TWO = """
[relay]
attesters = ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]

[markets.eth]
feed = "feeds/eth.csv"
asset = "WETH"
attesters = ["http://10.0.0.1:7000"]

[markets.btc]
feed = "feeds/btc"
artifacts = "sets/btc"
"""


def _project(root: Path, toml: str) -> Path:
    (root / "sentinel.toml").write_text(toml)
    return root


def test_no_market_tables_is_one_default_market_from_data_feed_own_artifacts_and_relay_attesters(tmp_path):
    config = load_config(_project(tmp_path, '[data]\nfeed = "x/feed.csv"\n[relay]\nattesters = ["http://a:1"]\n'),
                         env={})
    assert config.markets == (MarketConfig(name=DEFAULT_MARKET, asset=DEFAULT_ASSET),)
    layout = ArtifactLayout(tmp_path)
    (only,) = markets(config, layout)
    assert (only.name, only.feed, only.layout, only.attesters, only.asset) == (
        "default", tmp_path / "x" / "feed.csv", layout, ("http://a:1",), "USD")


def test_two_markets_resolve_relative_paths_and_fall_back_per_field(tmp_path):
    (tmp_path / "sets" / "btc").mkdir(parents=True)
    config = load_config(_project(tmp_path, TWO), env={})
    assert [m.name for m in config.markets] == ["eth", "btc"]  # file order
    eth, btc = markets(config, ArtifactLayout(tmp_path))
    assert (eth.feed, eth.layout.root, eth.attesters, eth.asset) == (
        tmp_path / "feeds" / "eth.csv", tmp_path, ("http://10.0.0.1:7000",), "WETH")
    assert (btc.feed, btc.layout.root, btc.asset) == (tmp_path / "feeds" / "btc", tmp_path / "sets" / "btc", "btc")
    assert btc.attesters == ("http://127.0.0.1:7001", "http://127.0.0.1:7002")  # relay.attesters
    assert btc.layout.circuit_manifest == tmp_path / "sets" / "btc" / "circuits" / "manifest.json"
    assert market(config, ArtifactLayout(tmp_path), "btc") == btc
    with pytest.raises(ConfigError, match=r"the configuration has 2 markets \(eth, btc\): name one with --market"):
        market(config, ArtifactLayout(tmp_path))
    with pytest.raises(ConfigError, match=r"no market 'sol' in the configuration \(markets: eth, btc\)"):
        market(config, ArtifactLayout(tmp_path), "sol")


def test_a_missing_artifact_set_is_named(tmp_path):
    config = load_config(_project(tmp_path, TWO), env={})
    with pytest.raises(ConfigError, match=r"\[markets.btc\] artifacts: .*sets/btc is not a directory"):
        markets(config, ArtifactLayout(tmp_path))


@pytest.mark.parametrize(("toml", "fragment"), [
    ("[markets.ETH]\nfeed = 'a.csv'\n", r"sentinel.toml: \[markets.ETH\]: a market name must match"),
    (f"[markets.{'a' * 33}]\nfeed = 'a.csv'\n", "a market name must match"),
    ("[markets.eth]\nfed = 'a.csv'\n",
     r"sentinel.toml: \[markets.eth\]: unknown setting 'fed' \(known: artifacts, asset, attesters, feed\)"),
    ("[markets]\neth = 3\n", r"\[markets.eth\] must be a table of market settings"),
    ("[markets.eth]\nattesters = 3\n", r"sentinel.toml: \[markets.eth\] attesters: not a list of strings"),
    ("[markets.eth]\nattesters = ['ftp://a']\n", r"\[markets.eth\] attesters\[0\] must be an http\(s\) URL"),
    ("[markets.eth]\nasset = ' '\n", r"\[markets.eth\] asset must not be blank"),
])
def test_a_bad_market_table_is_named(tmp_path, toml, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(_project(tmp_path, toml), env={})


def test_market_settings_are_listed_with_their_sources_and_round_trip_through_overrides(tmp_path):
    """`sentinel config` lists each market's fields; the prover child's flat overrides give the same config."""
    resolved = resolve_config(_project(tmp_path, TWO), env={})
    settings = {s.name: s for s in resolved.settings()}
    toml = Source("file", str(tmp_path / "sentinel.toml"))
    assert (settings["markets.eth.asset"].value, settings["markets.eth.asset"].source) == ("WETH", toml)
    assert (settings["markets.btc.asset"].value, settings["markets.btc.asset"].source) == ("btc", Source("default"))
    assert settings["markets.btc.artifacts"].doc and "markets.btc.name" not in settings
    flat = {f"{s}.{k}": v for s, fields in resolved.config.to_dict().items() for k, v in fields.items()}
    assert flat["markets.eth"]["attesters"] == ("http://10.0.0.1:7000",)
    assert load_config(_project(tmp_path, ""), flat, env={}) == resolved.config
    assert resolve_config(tmp_path, flat, env={}).sources["markets.eth.feed"] == Source("flag")


def test_env_cannot_set_a_market(tmp_path):
    with pytest.raises(ConfigError, match=r"environment SENTINEL_MARKETS__ETH: \[markets.eth\] must be a table"):
        load_config(tmp_path, env={"SENTINEL_MARKETS__ETH": "feeds/eth.csv"})


def _deployment(market: str, breaker: str) -> Deployment:
    contracts = {"SentinelBreaker": ContractRecord(address=breaker, tx_hash="0x" + "00" * 32, block=3, gas_used=1,
                                                   creation_sha256="", runtime_sha256="", runtime_bytes=0, abi=[])}
    return Deployment(chain_id=31337, rpc_url="http://127.0.0.1:1", block=3, deployed_at="", deployer="",
                      governance="", guardian="", attesters=["0x" + "aa" * 20], quorum=2, timelock_seconds=3600,
                      score_scale=10, policy={"trip_after": 3}, circuit={}, contracts=contracts, compiler="",
                      market=market, asset=market.upper())


def test_a_version_1_file_reads_as_the_default_market(tmp_path):
    layout = ArtifactLayout(tmp_path)
    layout.deployments.parent.mkdir(parents=True)
    doc = {k: v for k, v in _deployment("x", "0x" + "11" * 20).to_dict().items()
           if k not in ("market", "asset", "artifacts")}
    layout.deployments.write_text(json.dumps({**doc, "version": 1}))
    deployments = load_deployments(layout)
    assert deployments.names() == ["default"]
    only = load_deployment(layout)
    assert (only.market, only.asset, only.address("SentinelBreaker")) == ("default", "USD", "0x" + "11" * 20)
    assert load_deployment(layout, "default") == only
    with pytest.raises(ConfigError, match=r"no market 'eth' in deployments.json \(markets: default\)"):
        load_deployment(layout, "eth")


def test_a_version_2_file_round_trips_every_market(tmp_path):
    from sentinel.chain.deploy import write_deployments

    layout = ArtifactLayout(tmp_path)
    written = Deployments({"eth": _deployment("eth", "0x" + "11" * 20), "btc": _deployment("btc", "0x" + "22" * 20)})
    write_deployments(layout, written)
    doc = json.loads(layout.deployments.read_text())
    assert doc["version"] == 2 and list(doc["markets"]) == ["eth", "btc"]
    read = load_deployments(layout)
    assert read == written and read.names() == ["eth", "btc"]
    assert load_deployment(layout, "btc").address("SentinelBreaker") == "0x" + "22" * 20
    with pytest.raises(ConfigError, match=r"deployments.json has 2 markets \(eth, btc\): name one with --market"):
        load_deployment(layout)
    with_default = Deployments({"default": _deployment("default", "0x" + "33" * 20), **written.markets})
    write_deployments(layout, with_default)
    assert load_deployment(layout).address("SentinelBreaker") == "0x" + "33" * 20  # the default market


@pytest.mark.parametrize(("doc", "field"), [({"version": 3, "markets": {}}, "version"),
                                            ({"version": 2, "markets": []}, "markets")])
def test_a_deployments_file_of_another_shape_is_named(tmp_path, doc, field):
    layout = ArtifactLayout(tmp_path)
    layout.deployments.parent.mkdir(parents=True)
    layout.deployments.write_text(json.dumps(doc))
    with pytest.raises(ArtifactFieldError, match=f"field '{field}'"):
        load_deployments(layout)


def test_nothing_deployed_says_to_deploy(tmp_path):
    with pytest.raises(ChainError, match="nothing deployed yet"):
        load_deployment(ArtifactLayout(tmp_path))


def test_sentinel_config_lists_each_market(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    _project(tmp_path, TWO)
    code, out, err = run_cli("--root", tmp_path, "config", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)["settings"]}
    assert (rows["markets.eth.feed"]["value"], rows["markets.eth.feed"]["source"]) == ("feeds/eth.csv", "file")
    assert (rows["markets.btc.attesters"]["value"], rows["markets.btc.attesters"]["source"]) == ([], "default")
    code, out, err = run_cli("--root", tmp_path, "config")
    assert code == 0, err
    assert 'markets.eth.asset = "WETH"  (file ' in out
