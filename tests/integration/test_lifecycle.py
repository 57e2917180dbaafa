"""A model upgrade through the breaker's timelock, end to end on a real Anvil, with the relay and attesters following.

The project is deployed with the tiny model; the candidate is the tiny model with its output bias shifted
(``other_model_circuit``, no batch circuit), added as a version. Real attester services follow the breaker
through their node. The relay (in this process, real provers) proves a window with the tiny model and reports
it, shadow-scoring the candidate beside it; ``sentinel upgrade propose`` deploys the candidate's verifier and
starts the 1 h timelock; the chain's clock is moved past the eta and the feed goes on at chain time; the relay
proves the next window with the tiny model and, before it sends it, ``sentinel upgrade execute`` runs: the
relay's next pass switches to the candidate, proves that window again and reports it. Then the breaker is moved
back to the tiny model the same way, and this time the relay is restarted right after the execute (a second
relay on the same queue, a proof of the candidate waiting in it): it starts on the model in force and proves
that window again. Every window is accounted for, each report's proof is of the model whose verifier the
breaker called in its block, the attesters switched too, and ``sentinel audit`` with both artifact sets is
clean. Last, a verifier of no known set stops the market and the attesters, each saying which.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import BREAKER, connect, contract
from sentinel.chain.deploy import OPTIMIZER_RUNS, ZERO_ADDRESS, Deployment, deploy_all, load_deployment
from sentinel.chain.keys import demo_key
from sentinel.config import SentinelConfig, load_config
from sentinel.in_force import UnknownModel
from sentinel.relay.daemon import Relay
from sentinel.relay.replay import replay
from sentinel.versions import add_version, read_version
from tests.support.attesters import AttesterProcess, start_parties
from tests.support.projects import linked_project

pytestmark = pytest.mark.integration

ATTESTER_KEYS = [demo_key(2), demo_key(3)]  # two of the three registered attesters: the quorum
TIMELOCK = 3600
CHAIN_TOML = f"""
[chain]
trip_threshold = 0.99
reset_threshold = 0.5
trip_after = 3
reset_after = 2
max_age_seconds = 1800
timelock_seconds = {TIMELOCK}

[relay]
report = "every"
confirmations = 1
interval_seconds = 0.2
attester_retry_seconds = 0.5
"""
FINAL = {"confirmed", "rejected", "skipped", "screened"}


def _stamp(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class World:
    """The node, the project, the feed (and the attesters' copies) and the relay's queue."""

    url: str
    root: Path
    config: SentinelConfig
    deployment: Deployment
    feed: Path
    db: Path
    tmp: Path
    rows: list[str]  #: data rows of a generated feed; their cells are reused with timestamps at chain time
    header: str
    parties: list[AttesterProcess]
    used: int = 0

    def append_window(self, window: int) -> None:
        """Append ``window`` consecutive rows starting just after the chain's clock (one new complete window: a
        gap before them starts a new segment), the chain's clock following each row."""
        start = anvil.chain_time(self.url) + 5
        lines = [",".join([_stamp(start + 60 * i), *row.split(",")[1:]])
                 for i, row in enumerate(self.rows[self.used:self.used + window])]
        self.used += window
        src = self.tmp / f"segment-{self.used}.csv"
        src.write_text("\n".join([self.header, *lines]) + "\n")
        copies = [(party.feed / "feed.csv", None) for party in self.parties]
        replay(src, self.feed, rows_per_second=2000, chain_rpc=self.url, copies=copies)

    def relay(self, shadow: str = "") -> Relay:
        """A relay on the project's queue (``shadow``: a candidate version float-scored beside production)."""
        config = replace(self.config, lifecycle=replace(self.config.lifecycle, shadow=(shadow,) if shadow else ()))
        return Relay(ArtifactLayout(self.root), config, data=self.feed, db=self.db)

    def windows(self) -> dict[int, dict[str, Any]]:
        return {int(r["window_id"]): r for r in self.select("SELECT * FROM windows ORDER BY window_id")}

    def select(self, sql: str) -> list[dict[str, Any]]:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(sql)]
        finally:
            db.close()

    def passes(self, relay: Relay, until: Any, what: str, limit: int = 40) -> None:
        """Run relay passes (a block mined between them) until ``until()``; fail naming the queue otherwise."""
        for _ in range(limit):
            relay.run_once()
            if until():
                return
            anvil.rpc(self.url, "evm_mine")
        pytest.fail(f"{what}: not reached after {limit} passes; queue {self.windows()}")

    def confirmed(self, wid: int) -> bool:
        return self.windows().get(wid, {}).get("state") == "confirmed"

    def healthz(self, party: AttesterProcess) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(party.url + "/healthz", timeout=5) as answer:  # noqa: S310 - local service
                return dict(json.loads(answer.read()))
        except urllib.error.HTTPError as exc:  # 503 while not ready: the body says why
            return dict(json.loads(exc.read()))


@pytest.fixture
def world(tiny_circuit: Path, other_model_circuit: Path, tmp_path: Path) -> Iterator[World]:
    from sentinel.data.io import market_csv_bytes
    from sentinel.data.synthetic import generate

    (tmp_path / "project").mkdir()
    root = linked_project(tiny_circuit, tmp_path / "project")
    with (root / "sentinel.toml").open("a") as toml:
        toml.write(CHAIN_TOML)
    lines = market_csv_bytes(generate(2, seed=21)).decode().splitlines()
    port = anvil.free_port()
    # two timelocks and three windows' rows later the chain is still behind the wall clock: a relay that has not
    # read a block yet (a restart) checks rows for future skew against the wall clock
    genesis = int(datetime.now(UTC).timestamp()) - 8 * 3600
    process = anvil.spawn(port, 31337, log=tmp_path / "anvil.log", timestamp=genesis)
    parties: list[AttesterProcess] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deployment = deploy_all(ArtifactLayout(root), load_config(root, env={}), url)
        parties = start_parties(ATTESTER_KEYS, tmp_path / "parties", root, url)
        config = load_config(root, {"relay.attesters": ",".join(p.url for p in parties)}, env={})
        yield World(url, root, config, deployment, tmp_path / "relay-feed" / "feed.csv", tmp_path / "queue.sqlite",
                    tmp_path, lines[1:], lines[0], parties)
    finally:
        for party in parties:
            party.stop()
        anvil.stop_process(process.pid)


def _upgrade(world: World, run_cli: Any, version: str) -> dict[str, Any]:
    """``sentinel upgrade propose``, a refused early ``execute``, then the chain's clock moved past the eta."""
    code, out, err = run_cli("--root", world.root, "upgrade", "propose", "--version", version, "--json")
    assert code == 0, err
    proposal = json.loads(out)
    assert proposal["version"] == version and proposal["eta"] >= anvil.chain_time(world.url) + TIMELOCK - 5
    code, _, err = run_cli("--root", world.root, "upgrade", "execute")
    assert code == 1 and "of chain time left" in err and "\n" not in err.strip(), err
    code, out, _ = run_cli("--root", world.root, "upgrade", "status", "--json")
    status = json.loads(out)
    assert status["pending"]["version"] == version and status["pending"]["executable"] is False
    anvil.warp(world.url, proposal["eta"] + 1)
    return dict(proposal)


def _execute(world: World, run_cli: Any, version: str) -> int:
    code, out, err = run_cli("--root", world.root, "upgrade", "execute", "--json")
    assert code == 0, err
    executed = json.loads(out)
    assert executed["version"] == version
    record = load_deployment(ArtifactLayout(world.root))
    assert record.model_version == version and record.pending_upgrade is None
    assert record.address("Halo2Verifier") == executed["verifier"]
    return int(executed["block"])


def test_an_upgrade_executed_mid_run_is_followed_by_the_relay_and_the_attesters(world: World, run_cli: Any,
                                                                                other_model_circuit: Path,
                                                                                caplog: pytest.LogCaptureFixture):
    from sentinel.audit.run import AuditRequest, run_audit
    from sentinel.in_force import bundle_vk, settings_of

    layout = ArtifactLayout(world.root)
    tiny = read_version(layout, "project")
    other = add_version(layout, other_model_circuit)
    assert other.id != tiny.id and other.built
    vk = {tiny.id: settings_of(tiny.layout).vk_sha256, other.id: settings_of(other.layout).vk_sha256}
    window = settings_of(tiny.layout).window

    # tiny in force: the first window is proved and reported with it, the candidate shadow-scored beside it
    world.append_window(window)
    relay = world.relay(shadow=other.id)
    first = second = third = switch_one = switch_two = -1
    try:
        world.passes(relay, lambda: bool(world.windows()) and all(w["state"] in FINAL
                                                                  for w in world.windows().values()),
                     "the first window reported")
        assert relay.model_version == tiny.id and relay.health()["model_version"] == tiny.id
        first = max(world.windows())
        assert world.confirmed(first)
        shadow = world.select("SELECT window_id, version, production_version FROM shadow_scores")
        assert shadow == [{"window_id": first, "version": other.id, "production_version": tiny.id}]
        assert {world.healthz(p)["model_version"] for p in world.parties} == {tiny.id}

        # the candidate proposed; past its eta the feed goes on at chain time; a window is proved with tiny ...
        _upgrade(world, run_cli, other.id)
        world.append_window(window)
        from sentinel.relay.daemon import PassResult

        relay.ingest(PassResult())
        second = max(world.windows())
        assert second > first
        relay.prove_next(PassResult(), relay.lane.head())
        assert world.windows()[second]["state"] == "proved"
        assert bundle_vk(world.windows()[second]["bundle"]) in vk[tiny.id]
        # ... and the upgrade executes before it is sent: the relay follows on its next pass and proves it again
        switch_one = _execute(world, run_cli, other.id)
        world.passes(relay, lambda: world.confirmed(second), "the window proved again with the candidate")
        assert relay.model_version == other.id and relay.health()["model_version"] == other.id
        switched = [r.getMessage() for r in caplog.records if "event=model_switched" in r.getMessage()]
        assert switched == [(f"event=model_switched from={tiny.id} to={other.id} verifier={relay.verifier} "
                             f"block={switch_one} market=default")]
        row = world.windows()[second]
        assert tiny.id in (row["last_error"] or "") and other.id in (row["last_error"] or "")
        assert bundle_vk(row["bundle"]) in vk[other.id]
        metrics = relay.registry.render().decode()
        assert f'sentinel_relay_model{{market="default",version="{other.id}"}} 1.0' in metrics
        assert {world.healthz(p)["model_version"] for p in world.parties} == {other.id}

        # back to tiny; this time the relay restarts right after the execute, a proof of the candidate queued
        _upgrade(world, run_cli, tiny.id)
        world.append_window(window)
        relay.ingest(PassResult())
        third = max(world.windows())
        assert third > second
        relay.prove_next(PassResult(), relay.lane.head())
        assert bundle_vk(world.windows()[third]["bundle"]) in vk[other.id]
        switch_two = _execute(world, run_cli, tiny.id)
    finally:
        relay.close()
    restarted = world.relay()
    try:
        assert restarted.model_version == tiny.id  # its configured set, until it has read the chain
        world.passes(restarted, lambda: world.confirmed(third), "the restarted relay proving with the model in force")
        assert restarted.model_version == tiny.id
        assert bundle_vk(world.windows()[third]["bundle"]) in vk[tiny.id]
        assert other.id in (world.windows()[third]["last_error"] or "")
    finally:
        restarted.close()
    assert {world.healthz(p)["model_version"] for p in world.parties} == {tiny.id}

    # every window of the feed is accounted for, and each report was proved with the model in force in its block
    rows = world.windows()
    assert sorted(rows) == [first, second, third]
    assert all(r["state"] == "confirmed" for r in rows.values()), rows
    chain = connect(world.deployment, world.config, world.url)
    breaker = contract(chain, world.deployment, BREAKER)
    reports = {int(e["args"]["windowId"]): int(e["blockNumber"])
               for e in breaker.events.Report().get_logs(from_block=0)}
    assert sorted(reports) == [first, second, third]  # each once
    changes = [int(e["blockNumber"]) for e in breaker.events.VerifierChanged().get_logs(from_block=0)]
    assert changes[-2:] == [switch_one, switch_two]
    assert reports[first] < switch_one < reports[second] < switch_two < reports[third]
    assert bundle_vk(rows[first]["bundle"]) in vk[tiny.id]

    report = run_audit(AuditRequest(
        rpc_url=world.url, breaker=breaker.address, artifacts=(tiny.layout.root, other.layout.root),
        breaker_source=layout.breaker_source, breaker_optimizer_runs=OPTIMIZER_RUNS,
        data=tuple(sorted(world.tmp.glob("segment-*.csv"))),  # the feed's gap-free stretches, each an archive
        workers=1, score_tolerance=0.02))
    assert report.exit_code == 0, report.discrepancies
    for check in ("proofs", "input-hash", "signatures"):
        assert (report.checks[check].passed, report.checks[check].failed) == (3, 0), check
    assert len([f for f in report.findings if f.check == "verifier-change"]) == 2

    # governance moves the breaker to a verifier that is no known set's: the market stops proving, the attesters
    # refuse, each saying which verifier and what to add
    rogue = world.deployment.address("DemoToken")
    gov = demo_key(0)
    chain.transact(breaker.functions.proposeVerifier(rogue, 10, 60, chain.codehash(rogue), ZERO_ADDRESS, 0,
                                                     b"\0" * 32), gov, "proposing a rogue verifier")
    code, _, err = run_cli("--root", world.root, "upgrade", "execute")
    assert code == 1 and f"the breaker's pending verifier is {rogue}, deployments.json records none" in err
    anvil.warp(world.url, int(chain.call(breaker.functions.pendingVerifierEta(), "eta")) + 1)
    chain.transact(breaker.functions.executeVerifier(), gov, "executing it")
    stopped = world.relay()
    try:
        with pytest.raises(UnknownModel) as info:
            stopped.run_once()
    finally:
        stopped.close()
    assert rogue in str(info.value) and "sentinel models add" in str(info.value)
    assert world.windows()[third]["state"] == "confirmed" and len(world.windows()) == 3
    code, out, _ = run_cli("--root", world.root, "upgrade", "status", "--json")
    assert code == 0 and json.loads(out)["version"] is None and json.loads(out)["verifier"] == rogue
    answers = [world.healthz(p) for p in world.parties]
    for _ in range(50):  # each party reads the verifier every poll_seconds
        if all(a["model_error"] for a in answers):
            break
        time.sleep(0.2)
        answers = [world.healthz(p) for p in world.parties]
    assert all(a["ready"] is False and rogue in a["model_error"] for a in answers), answers
