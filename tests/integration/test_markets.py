"""Two markets on one real Anvil: `sentinel deploy` gives each its own verifier, breaker and vault, and one
market's tripped breaker stops only its own vault."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import BREAKER, TOKEN, VAULT, connect, contract
from sentinel.chain.deploy import load_deployment, load_deployments
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from sentinel.zk.manifest import load_manifest
from tests.integration.batch_circuit import chain_project

pytestmark = pytest.mark.integration

GUARDIAN = demo_key(1)  # the demo deployment's guardian (Anvil dev account 1)

MARKETS_TOML = """
[markets.eth]
feed = "feeds/eth.csv"
asset = "WETH"

[markets.btc]
feed = "feeds/btc.csv"
artifacts = "sets/btc"
"""


def _artifact_set(tiny: Path, root: Path) -> Path:
    """The tiny circuit's verifier and manifest (no batch set) and its model card: what deploy reads."""
    chain_project(tiny, None, root)
    (root / "models").mkdir()
    shutil.copy(tiny / "models" / "model_card.json", root / "models" / "model_card.json")
    return root


@pytest.fixture
def node(tmp_path: Path) -> Iterator[str]:
    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path / "anvil.log")
    yield f"http://127.0.0.1:{port}"
    anvil.stop_process(process.pid)


def test_two_markets_deploy_apart_and_a_tripped_market_stops_only_its_vault(tiny_circuit: Path, node: str,
                                                                             run_cli, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    for name in ("SENTINEL_ATTESTER_KEYS", "SENTINEL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    root = _artifact_set(tiny_circuit, tmp_path / "project")
    _artifact_set(tiny_circuit, root / "sets" / "btc")
    (root / "sentinel.toml").write_text(MARKETS_TOML)
    layout = ArtifactLayout(root)

    code, out, err = run_cli("--root", root, "deploy", "--rpc", node, "--json")
    assert code == 0, err
    assert "[deploy] eth: SentinelBreaker" in err and "[deploy] btc: SentinelBreaker" in err
    written = json.loads(layout.deployments.read_text())
    assert written["version"] == 2 and list(written["markets"]) == ["eth", "btc"]
    assert set(json.loads(out)["markets"]) == {"eth", "btc"}

    config = load_config(root, env={})
    deployments = load_deployments(layout)
    addresses = set()
    for name, artifact_root in (("eth", root), ("btc", root / "sets" / "btc")):
        d = deployments.market(name)
        chain = connect(d, config)
        breaker, vault, token = (contract(chain, d, c) for c in (BREAKER, VAULT, TOKEN))
        verifier = chain.call(breaker.functions.verifier(), "verifier")
        assert verifier == d.address("Halo2Verifier")
        manifest = load_manifest(ArtifactLayout(artifact_root))
        assert hashlib.sha256(chain.code(verifier)).hexdigest() == manifest["verifier_runtime_sha256"]
        assert chain.call(vault.functions.breaker(), "breaker") == d.address(BREAKER)
        assert chain.call(vault.functions.asset(), "asset") == d.address(TOKEN)
        assert chain.call(token.functions.symbol(), "symbol") == {"eth": "sWETH", "btc": "sbtc"}[name]
        assert d.policy["source"].startswith("model card")
        addresses |= {d.address(c) for c in ("Halo2Verifier", BREAKER, VAULT, TOKEN)}
    assert len(addresses) == 8  # nothing shared between the markets

    code, _, err = run_cli("--root", root, "vault", "deposit", "100")
    assert code != 0 and "2 markets (eth, btc): name one with --market" in err
    for name in ("eth", "btc"):
        code, out, err = run_cli("--root", root, "vault", "deposit", "100", "--market", name, "--json")
        assert code == 0, err
        assert json.loads(out)["market"] == name

    eth = load_deployment(layout, "eth")
    chain = connect(eth, config)
    chain.transact(contract(chain, eth, BREAKER).functions.trip(), GUARDIAN, "guardian trip")

    code, _, err = run_cli("--root", root, "vault", "withdraw", "10", "--market", "eth")
    assert code != 0 and "BreakerTripped" in err
    code, _, err = run_cli("--root", root, "vault", "withdraw", "10", "--market", "btc")
    assert code == 0, err

    code, out, err = run_cli("--root", root, "chain", "status", "--rpc", node, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["deployment"] is None  # two markets, none called default
    eth_state, btc_state = status["markets"]["eth"], status["markets"]["btc"]
    assert (eth_state["breaker"]["tripped"], eth_state["breaker"]["manual_trip"]) == (True, True)
    assert (eth_state["vault"]["open"], eth_state["vault"]["deposit"]) == (False, 100.0)
    assert btc_state["breaker"]["tripped"] is False
    assert (btc_state["vault"]["open"], btc_state["vault"]["deposit"]) == (True, 90.0)
    code, out, err = run_cli("--root", root, "chain", "status", "--rpc", node)
    assert code == 0, err
    assert "market eth (asset WETH):" in out and "market btc (asset btc):" in out and "TRIPPED by hand" in out
