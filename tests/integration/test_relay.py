"""The relay daemon as a real subprocess against a real Anvil, with the session's tiny circuit.

One Anvil and one deployment per module, evm_snapshot/evm_revert around each
test. Every test follows its own slice of one long generated feed, later
slices later in time, and the chain's clock follows the appended rows (the
feed is replayed faster than real time). Faults are real: the RPC link is cut
by a TCP proxy, the relay is killed with SIGKILL, Anvil's automine is turned
off, the base fee is pushed up, and a foreign transaction takes the relay's
nonce. After each test the chain's Report events are checked: no window id
twice, and every queued window ends confirmed, rejected or skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import BREAKER, connect, contract
from sentinel.chain.deploy import Deployment, deploy_all
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from sentinel.relay.replay import replay
from tests.support.attesters import AttesterProcess, start_parties
from tests.support.projects import linked_project
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

RELAY_KEY = demo_key(6)
ATTESTER_KEYS = [demo_key(2), demo_key(3), demo_key(4)]  # the deployment registers these (quorum 2)
FINAL = {"confirmed", "rejected", "skipped", "failed", "screened"}
SLICE = 120  # feed rows reserved for each test


@pytest.fixture(scope="module")
def long_feed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Canonical lines (header first) of a feed long enough for every test's slice."""
    from sentinel.data.io import market_csv_bytes
    from sentinel.data.synthetic import generate

    lines = market_csv_bytes(generate(6, seed=21)).decode().splitlines()
    assert len(lines) > 8 * SLICE
    return lines


@pytest.fixture(scope="module")
def project(tiny_circuit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root on the tiny circuit (linked, never written) with its own proofs/ and .sentinel/."""
    return linked_project(tiny_circuit, tmp_path_factory.mktemp("relay-project"))


@pytest.fixture(scope="module")
def node(long_feed: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sentinel.relay.replay import row_unix

    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path_factory.mktemp("anvil") / "anvil.log",
                          timestamp=int(row_unix(long_feed[1])))
    yield f"http://127.0.0.1:{port}"
    anvil.stop_process(process.pid)


@pytest.fixture(scope="module")
def deployment(node: str, project: Path) -> Deployment:
    config = load_config(project, {"chain.trip_threshold": 0.99, "chain.reset_threshold": 0.5,
                                   "chain.trip_after": 3, "chain.reset_after": 2, "chain.max_age_seconds": 1800},
                         env={})
    return deploy_all(ArtifactLayout(project), config, node)


@pytest.fixture(scope="module")
def parties(node: str, deployment: Deployment, project: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AttesterProcess]]:
    """Three attester services for the module, each with its own key, feed copy and record (tests that stop
    attesters start their own)."""
    started = start_parties(ATTESTER_KEYS, tmp_path_factory.mktemp("parties"), project, node)
    yield started
    for party in started:
        party.stop()


@dataclass
class World:
    """What a test drives: the node, the deployment, its slice of the feed and a relay to start."""

    url: str
    root: Path
    deployment: Deployment
    lines: list[str]  #: header + this test's rows
    feed: Path
    db: Path
    tmp: Path
    slice: int
    parties: list[AttesterProcess]
    settings: dict[str, str] = field(default_factory=dict)  #: more SENTINEL_* variables for the relays it starts

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return anvil.rpc(self.url, method, params or [])

    def append(self, first: int, last: int, *, prefill: int = 0, rate: float = 50.0) -> None:
        """Append this slice's rows first..last (1-based) to the feed, the chain's clock following."""
        src = self.tmp / "slice.csv"
        if not src.exists():
            src.write_text("\n".join(self.lines) + "\n")
        # each attester party gets every row in its own copy of the feed just before the relay does
        copies = [(party.feed / f"slice-{self.slice:04d}.csv", None) for party in self.parties]
        replay(src, self.feed, rows_per_second=rate, first=first, last=last, prefill=prefill, chain_rpc=self.url,
               copies=copies)

    def start(self, rpc: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """``sentinel relay run`` as a subprocess (stderr to a log file); ``env`` are relay settings (other settings:
        :attr:`settings`)."""
        port = anvil.free_port()
        self.metrics_port = port
        # no attester key reaches the relay: not in its environment, not in its configuration
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_ATTESTER")}
        environment = {**environment, "SENTINEL_RELAY__INTERVAL_SECONDS": "0.2",
                       "SENTINEL_RELAY__ATTESTERS": ",".join(party.url for party in self.parties),
                       "SENTINEL_RELAY__ATTESTER_RETRY_SECONDS": "0.5",
                       # the fault tests need every window on chain; risk mode has its own test
                       "SENTINEL_RELAY__REPORT": "every",
                       "SENTINEL_RELAY__BACKOFF_MAX_SECONDS": "1", "SENTINEL_RELAY__BACKOFF_INITIAL_SECONDS": "0.2",
                       **{f"SENTINEL_RELAY__{k.upper()}": v for k, v in env.items()}, **self.settings}
        self.log = self.tmp / f"relay-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "sentinel", "--root", str(self.root), "relay", "run", "--data", str(self.feed),
                 "--db", str(self.db), "--rpc", rpc or self.url, "--metrics-port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=environment)

    def start_with_a_pending_submit(self, **env: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        """Automine off, one window's rows, the relay started: returns it and its first, still pending tx."""
        self.rpc("evm_setAutomine", [False])
        self.append(1, 50)
        relay = self.start(**env)
        try:
            self.wait("a pending submit", lambda: any(w["state"] == "submitted" for w in self.windows()), 60,
                      process=relay)
        except BaseException:
            self.stop(relay)
            raise
        return relay, self.txs()[0]

    def windows(self) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM windows ORDER BY window_id")]
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def txs(self) -> list[dict[str, Any]]:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM txs ORDER BY created_at, rowid")]
        finally:
            db.close()

    def wait(self, what: str, condition: Callable[[], Any], timeout: float = 60.0, *, mine: bool = False,
             process: subprocess.Popen[bytes] | None = None) -> Any:
        """Poll ``condition`` until truthy (mining a block per poll if asked); fail with the relay's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if process is not None and process.poll() is not None:
                pytest.fail(f"relay exited with {process.returncode} while waiting for {what}:\n{self.tail()}")
            if mine:
                self.rpc("evm_mine")
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}; windows "
                    f"{[(w['window_id'], w['state']) for w in self.windows()]}\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except (OSError, AttributeError):
            return ""

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        """SIGTERM and wait: the relay finishes its step and exits 0."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"relay did not stop within {timeout:g} s of SIGTERM:\n{self.tail()}")

    def reports(self) -> list[dict[str, Any]]:
        """Every Report event on chain (window id, tx hash)."""
        config = load_config(self.root, env={})
        chain = connect(self.deployment, config, self.url)
        breaker = contract(chain, self.deployment, BREAKER)
        logs = breaker.events.Report().get_logs(from_block=self.deployment.block)
        return [{"window_id": int(e["args"]["windowId"]), "tx": "0x" + bytes(e["transactionHash"]).hex()}
                for e in logs]

    def check_books(self) -> list[dict[str, Any]]:
        """No window twice on chain; every window final; each confirmed one is on chain by its recorded tx."""
        reports = self.reports()
        ids = [r["window_id"] for r in reports]
        assert len(ids) == len(set(ids)), f"a window was reported twice: {ids}"
        windows = self.windows()
        assert windows, "the relay queued nothing"
        assert all(w["state"] in FINAL for w in windows), [(w["window_id"], w["state"]) for w in windows]
        by_id = {r["window_id"]: r["tx"] for r in reports}
        for w in windows:
            if w["state"] == "confirmed":
                assert by_id.get(w["window_id"]) == w["tx_hash"], w
            else:
                assert w["window_id"] not in by_id or w["state"] == "rejected", w
        return windows


_slices = iter(range(10_000))


@pytest.fixture
def world(node: str, deployment: Deployment, project: Path, long_feed: list[str], parties: list[AttesterProcess],
          tmp_path: Path) -> Iterator[World]:
    snapshot = anvil.rpc(node, "evm_snapshot", [])
    k = next(_slices)
    lines = [long_feed[0], *long_feed[1 + k * SLICE:1 + (k + 1) * SLICE]]
    yield World(node, project, deployment, lines, tmp_path / "feed" / "market_depth.csv", tmp_path / "queue.sqlite",
                tmp_path, k, parties)
    anvil.rpc(node, "evm_setAutomine", [True])
    assert anvil.rpc(node, "evm_revert", [snapshot]) is True


def confirmed(world: World, n: int = 1) -> Callable[[], bool]:
    return lambda: sum(w["state"] == "confirmed" for w in world.windows()) >= n


def settled(world: World, last_line: int) -> Callable[[], bool]:
    """Every queued window final, and the feed read up to ``last_line`` (else rows may still be on their way)."""
    def check() -> bool:
        windows = world.windows()
        return any(w["end_line"] == last_line for w in windows) and all(w["state"] in FINAL for w in windows)
    return check


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test server
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- the tests ------------------------------------------------------------------------------


def test_relay_confirms_windows_quarantines_a_bad_row_and_reports_health(world: World):
    world.append(1, 50)
    relay = world.start()
    try:
        world.wait("the first confirmed window", confirmed(world), 90, mine=True, process=relay)
        # A malformed row arrives: it is quarantined with its line and column, the relay keeps going.
        with world.feed.open("a") as fh:
            bad = world.lines[51].split(",")
            bad[2] = "-5"
            fh.write(",".join(bad) + "\n")
        world.append(52, 102, rate=40)  # the bad row's hole stops windows for one window length
        world.wait("windows after the bad row confirmed",
                   lambda: any(w["state"] == "confirmed" and w["end_line"] >= 102 for w in world.windows()),
                   120, mine=True, process=relay)
        status, body = get(f"http://127.0.0.1:{world.metrics_port}/healthz")
        health = json.loads(body)
        assert status == 200 and health["ready"] is True and health["last_confirmed_window"] is not None
        assert health["lag_seconds"] is not None and health["lag_seconds"] >= 0
        _, metrics = get(f"http://127.0.0.1:{world.metrics_port}/metrics")
        text = metrics.decode()
        for name in ("sentinel_relay_prove_seconds_bucket",
                     'sentinel_relay_windows{market="default",state="confirmed"}', "sentinel_relay_submit_gas_bucket",
                     "sentinel_relay_last_score",
                     "sentinel_relay_breaker_tripped", "sentinel_relay_rpc_errors_total",
                     'sentinel_relay_quarantined_rows_total{market="default"} 1.0'):
            assert name in text, name
        world.wait("every window settled", settled(world, 103), 60, mine=True, process=relay)
    finally:
        code = world.stop(relay)
    assert code == 0, world.tail()
    log = world.log.read_text()
    assert "event=row_quarantined" in log and "line=52 column=buy_volume" in log, world.tail()
    assert "event=confirmed window=" in log and " tx=0x" in log and " attempt=" in log
    windows = world.check_books()
    # the bad row is line 52; the next window needs 50 good rows after it (lines 53..102): none spans it
    assert not [w for w in windows if 52 <= w["end_line"] < 102]
    out = subprocess.run([sys.executable, "-m", "sentinel", "--root", str(world.root), "relay", "status",
                          "--db", str(world.db), "--json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["all_accounted"] is True and report["quarantined"][0]["line"] == 52


def test_rpc_down_then_back_catches_up_without_duplicates(world: World):
    proxy = TcpProxy(int(world.url.rsplit(":", 1)[1])).up()
    world.append(1, 50)
    relay = world.start(rpc=proxy.url)
    try:
        world.wait("the first confirmed window", confirmed(world), 90, mine=True, process=relay)
        proxy.down()
        world.append(51, 53, rate=20)  # rows keep arriving while the node is unreachable: a backlog of 3
        world.wait("the relay noticing the outage", lambda: "event=rpc_down" in world.log.read_text(), 30,
                   process=relay)
        status, body = get(f"http://127.0.0.1:{world.metrics_port}/healthz")
        assert status == 503 and json.loads(body)["ready"] is False
        proxy.up()
        world.wait("the newest window confirmed after the outage",
                   lambda: any(w["end_line"] == 54 and w["state"] == "confirmed" for w in world.windows()),
                   90, mine=True, process=relay)
        world.wait("every window settled", settled(world, 54), 60, mine=True, process=relay)
        _, metrics = get(f"http://127.0.0.1:{world.metrics_port}/metrics")
        errors = [line for line in metrics.decode().splitlines() if line.startswith("sentinel_relay_rpc_errors_total")]
        assert float(errors[0].split()[-1]) >= 1
    finally:
        world.stop(relay)
        proxy.down()
    windows = world.check_books()
    # The backlog is reported in order after the outage (streaks need consecutive windows): every window
    # from the first confirmed one on is confirmed, none skipped, and the chain holds them in id order.
    first = min(w["window_id"] for w in windows if w["state"] == "confirmed")
    after = [w for w in windows if w["window_id"] >= first]
    assert [w["state"] for w in after] == ["confirmed"] * len(after), [(w["window_id"], w["state"]) for w in after]
    ids = [r["window_id"] for r in world.reports()]
    assert ids == sorted(ids) and ids == list(range(first, first + len(ids)))


def test_sigkill_mid_proof_and_mid_submit_then_restart(world: World):
    world.append(1, 50)
    relay = world.start()
    world.wait("a window being proved", lambda: any(w["state"] == "proving" for w in world.windows()), 60,
               process=relay)
    relay.kill()  # SIGKILL mid-proof
    relay.wait(10)
    assert [w["state"] for w in world.windows()] == ["proving"]
    world.rpc("evm_setAutomine", [False])  # the next send stays pending: a kill after sending, before the receipt
    relay = world.start()
    world.wait("the restarted relay to send", lambda: any(w["state"] == "submitted" for w in world.windows()), 60,
               process=relay)
    relay.kill()  # SIGKILL after sending, before any receipt
    relay.wait(10)
    sent = world.txs()
    assert len(sent) == 1
    relay = world.start()
    try:
        time.sleep(0)  # the pending transaction is picked up from the queue, not signed again
        world.rpc("evm_setAutomine", [True])
        world.wait("the window confirmed", confirmed(world), 60, mine=True, process=relay)
        world.append(51, 52, rate=5)
        world.wait("every window settled", settled(world, 53), 60, mine=True, process=relay)
    finally:
        world.stop(relay)
    windows = world.check_books()
    first = windows[0]
    assert first["state"] == "confirmed" and first["attempts"] == 2  # proved twice (killed once), sent once
    assert first["tx_hash"] == sent[0]["tx_hash"]
    assert [t["tx_hash"] for t in world.txs() if t["window_id"] == first["window_id"]] == [sent[0]["tx_hash"]]


def test_a_foreign_transaction_taking_the_relay_nonce_is_survived(world: World):
    from web3 import Web3

    relay, ours = world.start_with_a_pending_submit()
    try:
        w3 = Web3(Web3.HTTPProvider(world.url))
        foreign = w3.eth.account.sign_transaction({
            "to": RELAY_KEY.address, "value": 0, "gas": 21_000, "nonce": ours["nonce"], "chainId": 31337,
            "maxFeePerGas": ours["max_fee"] * 10, "maxPriorityFeePerGas": ours["max_priority_fee"] * 10,
        }, RELAY_KEY.secret)
        w3.eth.send_raw_transaction(foreign.raw_transaction)  # replaces ours in the pool: same nonce, 10x fees
        world.rpc("evm_mine")
        world.wait("the window confirmed with a fresh nonce", confirmed(world), 60, mine=True, process=relay)
    finally:
        world.stop(relay)
    windows = world.check_books()
    sent = world.txs()
    # Ours at the taken nonce (the same call, bumped if the relay met the foreign one in the pool before it was
    # mined), then the window signed once more at the next nonce; never a new signature at the taken nonce after.
    nonces = [t["nonce"] for t in sent]
    assert nonces[0] == ours["nonce"] and nonces[-1] == ours["nonce"] + 1, nonces
    assert nonces.count(ours["nonce"] + 1) == 1 and set(nonces) == {ours["nonce"], ours["nonce"] + 1}, nonces
    assert windows[-1]["tx_hash"] == sent[-1]["tx_hash"]
    assert "event=nonce_taken" in world.log.read_text()


def test_a_stuck_transaction_under_a_high_base_fee_gets_bumped_and_mined(world: World):
    high = 200 * 10**9
    relay, first = world.start_with_a_pending_submit(stuck_seconds="2")
    try:
        assert first["max_fee"] < high

        def mine_expensive() -> bool:
            world.rpc("anvil_setNextBlockBaseFeePerGas", [hex(high)])
            world.rpc("evm_mine")
            return sum(w["state"] == "confirmed" for w in world.windows()) >= 1 or \
                any(w["block_number"] for w in world.windows())

        world.wait("the bumped transaction mined", mine_expensive, 90, process=relay)
        world.wait("the window confirmed", confirmed(world), 60, mine=True, process=relay)
    finally:
        world.stop(relay)
    world.check_books()
    sent = world.txs()
    assert len(sent) >= 2 and len({t["nonce"] for t in sent}) == 1  # replacements share the nonce
    for old, new in itertools.pairwise(sent):
        assert new["max_fee"] * 1000 >= old["max_fee"] * 1125
        assert new["max_priority_fee"] * 1000 >= old["max_priority_fee"] * 1125
    assert sent[-1]["max_fee"] >= high
    assert "event=fee_bump" in world.log.read_text()


def test_a_reorg_that_drops_the_report_is_followed_by_the_same_transaction(world: World):
    world.append(1, 50)
    before = world.rpc("evm_snapshot")  # the chain as it was before the relay's transaction
    relay = world.start(confirmations="3")
    try:
        mined = world.wait("the report mined, not yet confirmed",
                           lambda: [w for w in world.windows() if w["block_number"] and w["state"] == "submitted"],
                           90, process=relay)[0]
        assert world.rpc("evm_revert", [before]) is True  # the block holding the report is gone
        world.wait("the relay noticing the reorg", lambda: "event=reorg" in world.log.read_text(), 30,
                   process=relay)
        world.wait("the window confirmed again", confirmed(world), 60, mine=True, process=relay)
    finally:
        world.stop(relay)
    world.check_books()
    sent = world.txs()
    assert [t["tx_hash"] for t in sent] == [mined["tx_hash"]]  # the same signed bytes, never a new signature


def test_a_copied_report_does_not_make_the_relay_pay_for_a_revert(world: World):
    """Security #18.11: a copy of the relay's calldata landed first, then the relay sent its own: a revert."""
    from web3 import Web3

    relay, ours = world.start_with_a_pending_submit()
    try:
        w3 = Web3(Web3.HTTPProvider(world.url))
        pending = w3.eth.get_transaction(ours["tx_hash"])
        # A copier lifts the calldata from the mempool and outbids it; ours leaves the node's pool meanwhile
        # (evicted, or the node restarted), so the relay will want to send it again. The relay is paused
        # while that happens: a pass between the drop and the mining would send ours again before the copy
        # is on chain, and both would land in one block (the case only a private endpoint avoids). A pass
        # paused between its simulation and its send sends ours once more after the copy landed: the
        # next pass must cancel it, so no block is mined until the window is dropped.
        os.kill(relay.pid, signal.SIGSTOP)
        try:
            world.rpc("anvil_dropTransaction", [ours["tx_hash"]])
            copier = demo_key(7)
            copy = w3.eth.account.sign_transaction({
                "to": pending["to"], "data": pending["input"], "value": 0, "gas": pending["gas"], "chainId": 31337,
                "nonce": w3.eth.get_transaction_count(copier.address),
                "maxFeePerGas": ours["max_fee"] * 2, "maxPriorityFeePerGas": ours["max_priority_fee"] * 2,
            }, copier.secret)
            w3.eth.send_raw_transaction(copy.raw_transaction)
            world.rpc("evm_mine")
        finally:
            os.kill(relay.pid, signal.SIGCONT)
        world.wait("the window dropped as already reported",
                   lambda: any(w["state"] == "rejected" for w in world.windows()), 60, process=relay)
        for _ in range(3):
            world.rpc("evm_mine")
    finally:
        world.stop(relay)
    windows = world.check_books()
    (rejected,) = [w for w in windows if w["state"] == "rejected"]
    assert "WindowNotNewer" in rejected["reason"] and "simulated" in rejected["reason"]
    for tx in world.txs():  # none of the relay's transactions was mined (so none reverted and cost gas)
        assert _receipt(w3, tx["tx_hash"]) is None


def _receipt(w3: Any, tx_hash: str) -> Any:
    from web3.exceptions import TransactionNotFound

    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None


def test_reports_go_only_through_the_private_endpoint_and_are_not_resent_while_unseen(world: World):
    """Security #18.5: a report in the public mempool can be front-run; with relay.private_rpc_url every raw
    transaction goes there, and nothing else does. A report the private endpoint holds is invisible to the main
    node until mined: the relay waits (no resend every pass, no "dropped"), and confirms it once it lands."""
    from tests.support.rpc_recorder import RpcRecorder

    api_key = "pk-93b1e0"  # in the endpoint's path and query, as providers' URLs carry them
    private = RpcRecorder(world.url, hold=True)  # a builder: keeps what it is sent until released
    main = RpcRecorder(world.url)
    try:
        world.append(1, 50)
        relay = world.start(rpc=main.url, private_rpc_url=f"{private.url}/{api_key}?apikey={api_key}")
        try:
            world.wait("the first report held by the private endpoint", lambda: private.held, 90, process=relay)
            time.sleep(3)  # some 15 passes at 0.2 s, all well inside stuck_seconds (30 s)
            assert len(private.held) == 1, "the unseen report was sent again (or bumped) while it waited"
            (waiting,) = world.windows()
            assert waiting["state"] == "submitted" and waiting["block_number"] is None
            assert private.release()[0].get("result"), "Anvil refused the held report"
            world.wait("the held report confirmed", confirmed(world), 60, mine=True, process=relay)
            world.append(51, 52, rate=5)
            world.wait("every window settled", settled(world, 53), 60, mine=True, process=relay)
        finally:
            code = world.stop(relay)
    finally:
        private.stop()
        main.stop()
    assert code == 0, world.tail()
    windows = world.check_books()
    assert sum(w["state"] == "confirmed" for w in windows) >= 2
    assert set(private.counts()) == {"eth_sendRawTransaction"}  # the endpoint is asked nothing else
    used = main.counts()
    assert used["eth_sendRawTransaction"] == 0, used
    assert used["eth_getTransactionReceipt"] and used["eth_estimateGas"] and used["eth_feeHistory"]
    ours = {t["tx_hash"]: t["raw_tx"] for t in world.txs()}
    sent = set(private.raw)
    assert set(ours.values()) <= sent  # every transaction the relay signed went to the private endpoint
    for w in windows:
        if w["state"] == "confirmed":
            assert ours[w["tx_hash"]] in sent
    log = world.log.read_text()
    assert f"private_rpc={private.url}" in log and api_key not in log


def _prover_children(pid: int) -> list[int]:
    """The relay's prover child processes (spawned workers, not multiprocessing's resource tracker), via /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def test_sigkill_of_the_prover_child_is_survived_and_the_relay_follows_a_quorum_change_on_chain(world: World):
    """The prover child is SIGKILLed mid-proof: the daemon lives on, the window is proved again and reported once.
    Then security #18.8: after setQuorum(3) the relay kept sending 2 signatures and every window failed."""
    world.append(1, 50)
    relay = world.start()
    try:
        world.wait("the first window being proved", lambda: "event=proving" in world.log.read_text(), 90,
                   process=relay)
        prover = world.wait("the prover child", lambda: _prover_children(relay.pid), 30, process=relay)[0]
        os.kill(prover, signal.SIGKILL)
        world.wait("the first window confirmed after the prover was killed", confirmed(world), 120, mine=True,
                   process=relay)
        assert relay.poll() is None  # the daemon lived through it
        config = load_config(world.root, env={})
        chain = connect(world.deployment, config, world.url)
        breaker = contract(chain, world.deployment, BREAKER)
        chain.transact(breaker.functions.setQuorum(3), demo_key(0), "setQuorum")
        world.append(51, 53, rate=20)
        world.wait("every window after the quorum change settled", settled(world, 54), 120, mine=True, process=relay)
    finally:
        world.stop(relay)
    windows = world.check_books()
    assert [w["state"] for w in windows] == ["confirmed"] * len(windows)  # none failed or rejected
    assert "event=prover_restart" in world.log.read_text()
    receipt_logs = breaker.events.QuorumChanged().get_logs(from_block=world.deployment.block)
    change_block = max(int(e["blockNumber"]) for e in receipt_logs)
    later = breaker.events.Report().get_logs(from_block=change_block)
    assert later, "no report after the quorum change"
    for event in later:  # each was accepted with 3 signatures: the contract refuses fewer
        tx = chain.w3.eth.get_transaction(event["transactionHash"])
        _, args = breaker.decode_function_input(tx["input"])
        assert len(args["signatures"]) == 3


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _signers(world: World, since_block: int) -> list[set[str]]:
    """For every Report since ``since_block``: the attesters whose signatures its submit carried."""
    from sentinel.chain import eip712
    from sentinel.chain.encoding import AttestationMessage

    config = load_config(world.root, env={})
    chain = connect(world.deployment, config, world.url)
    breaker = contract(chain, world.deployment, BREAKER)
    out = []
    for event in breaker.events.Report().get_logs(from_block=since_block):
        tx = chain.w3.eth.get_transaction(event["transactionHash"])
        _, args = breaker.decode_function_input(tx["input"])
        att = args["attestation"]
        message = AttestationMessage(int(att["windowId"]), int(att["windowEnd"]), int(att["inputHash"]))
        out.append({eip712.recover(bytes(sig), chain.chain_id, breaker.address, message).lower()
                    for sig in args["signatures"]})
    return out


def test_quorum_with_one_attester_down_and_a_window_waits_while_two_are(world: World):
    """Issue #19: the relay asks independent attester services; 2 of 3 are enough; with 1 of 3 the window waits
    in proved (nothing sent) and goes on chain once a second party is back. The relay holds no attester key."""
    a, b, c = start_parties(ATTESTER_KEYS, world.tmp / "own-parties", world.root, world.url)
    world.parties = [a, b, c]
    relay = None
    try:
        world.append(1, 50)
        relay = world.start()
        world.wait("the first confirmed window", confirmed(world), 90, mine=True, process=relay)
        secrets = {k.secret.removeprefix("0x").lower() for k in ATTESTER_KEYS}
        environ = _environ(relay.pid)
        assert not [k for k in environ if k.startswith("SENTINEL_ATTESTER") or k == "SENTINEL_CHAIN__ATTESTER_KEYFILE"]
        assert not [v for v in environ.values() if any(secret in v.lower() for secret in secrets)]
        a.stop()
        world.append(51, 52, rate=20)
        world.wait("windows confirmed with attester a down", settled(world, 53), 90, mine=True, process=relay)
        b.stop()
        before = len(world.reports())
        world.append(53, 53)
        world.wait("a window proved and short of its quorum",
                   lambda: [w for w in world.windows() if w["end_line"] == 54 and w["state"] == "proved"]
                   and "event=attester_shortfall" in world.log.read_text(), 90, process=relay)
        (waiting,) = [w for w in world.windows() if w["end_line"] == 54]
        time.sleep(3)  # several retries: still nothing sent
        assert [w["state"] for w in world.windows() if w["end_line"] == 54] == ["proved"]
        assert len(world.reports()) == before
        assert not [t for t in world.txs() if t["window_id"] == waiting["window_id"]]
        status, body = get(f"http://127.0.0.1:{world.metrics_port}/healthz")
        shortfall = json.loads(body)["attester_shortfall"]
        assert status == 200 and shortfall["window"] == waiting["window_id"]
        assert shortfall["detail"].startswith("1 of 2 signatures") and "unavailable" in shortfall["detail"]
        _, metrics = get(f"http://127.0.0.1:{world.metrics_port}/metrics")
        assert 'sentinel_relay_attester_shortfall{market="default"} 1.0' in metrics.decode()
        assert 'outcome="unavailable"' in metrics.decode()
        b.start()
        world.wait("the waiting window confirmed once b is back", settled(world, 54), 90, mine=True, process=relay)
    finally:
        if relay is not None:
            world.stop(relay)
        for party in (a, b, c):
            party.stop()
    windows = world.check_books()
    assert [w["state"] for w in windows] == ["confirmed"] * len(windows)
    signers = _signers(world, world.deployment.block)
    assert all(len(s) == 2 for s in signers)
    assert signers[-1] == {b.key.address.lower(), c.key.address.lower()}  # a was down; b came back
    assert "event=attested" in world.log.read_text()


def test_risk_mode_proves_the_windows_near_the_threshold_and_screens_the_calm_ones(world: World,
                                                                                   other_model_circuit: Path):
    """Issue #20: in risk mode each window is float-scored; a window scoring within the margin of the trip
    threshold is proved and reported, a calm one is screened (final, with its float score and why).
    Issue #23: a candidate version (lifecycle.shadow) is float-scored beside production on every one of them,
    and `sentinel shadow report` reads those scores back."""
    import numpy as np

    from sentinel.artifacts import ArtifactLayout
    from sentinel.chain.encoding import to_wad
    from sentinel.data.io import read_market_csv
    from sentinel.model.export import onnx_scores
    from sentinel.versions import add_version, read_version

    src = world.tmp / "scored.csv"
    src.write_text("\n".join(world.lines[:62]) + "\n")
    market = read_market_csv(src)
    features = market.features()
    ends = range(49, 61)  # 0-based end rows: windows ending at data rows 50..61 (feed lines 51..62)
    scores = onnx_scores(ArtifactLayout(world.root).onnx_model, np.stack([features[e - 49:e + 1] for e in ends]))
    # About 40 % of the windows near the threshold: threshold - margin at the scores' 60th percentile (the
    # breaker takes thresholds from 0.5 up; the tiny model's scores may sit lower)
    cut = float(np.quantile(scores, 0.6))
    threshold = max(0.5, cut + 0.001)
    margin = threshold - cut + 1e-4
    config = load_config(world.root, env={})
    chain = connect(world.deployment, config, world.url)
    breaker = contract(chain, world.deployment, BREAKER)
    params = chain.call(breaker.functions.params(), "params")
    # trip after 30 (never here): this test is about which windows are proved, not about tripping
    chain.transact(breaker.functions.setParams((to_wad(threshold), to_wad(threshold - 0.1), 30, params[3], params[4],
                                                params[5], params[6])), demo_key(0), "setParams")
    candidate = add_version(ArtifactLayout(world.root), other_model_circuit, circuits=False)
    production = read_version(ArtifactLayout(world.root), "project")
    world.append(1, 50)
    world.settings["SENTINEL_LIFECYCLE__SHADOW"] = candidate.id[:8]
    relay = world.start(report="risk", risk_margin=str(margin))
    try:
        world.append(51, 61, rate=4)
        world.wait("every window settled", settled(world, 62), 180, mine=True, process=relay)
    finally:
        world.stop(relay)
    windows = {w["end_line"]: w for w in world.check_books()}
    _check_shadow_scores(world, list(windows.values()), candidate.id, production.id)
    expected = {end + 2: float(score) for end, score in zip(ends, scores, strict=True)}  # feed line of the end row
    assert set(windows) == set(expected)
    for line, w in windows.items():
        assert w["float_score"] == pytest.approx(expected[line], abs=1e-6), w
        if expected[line] >= threshold - margin:
            assert w["state"] == "confirmed", w
        elif w["state"] == "screened":
            assert "< trip threshold" in w["reason"], w
        else:  # a calm window right after a high one is proved: it may extend (here: end) the streak
            assert w["state"] == "confirmed" and "streak" in w["reason"], w
    states = [w["state"] for w in windows.values()]
    assert "screened" in states and "confirmed" in states
    assert "event=screened" in world.log.read_text()


def _check_shadow_scores(world: World, windows: list[dict[str, Any]], candidate: str, production: str) -> None:
    """One shadow row per handled window: the candidate's score (its output bias is production's + 0.25: higher)
    beside production's float score of the same window; `shadow report --json` adds them up."""
    db = sqlite3.connect(f"file:{world.db}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        rows = {r["window_id"]: dict(r) for r in db.execute("SELECT * FROM shadow_scores")}
    finally:
        db.close()
    assert set(rows) == {w["window_id"] for w in windows}, world.tail()
    for w in windows:
        row = rows[w["window_id"]]
        assert (row["version"], row["production_version"], row["end_unix"]) == (candidate, production, w["end_unix"])
        assert row["score"] > row["production_score"], (row, w)
        if w["float_score"] is not None:  # risk mode and batch proofs keep production's float score too
            assert row["production_score"] == pytest.approx(w["float_score"], abs=1e-9), (row, w)
    assert f"event=shadow_scoring versions={candidate}" in world.log.read_text()
    out = subprocess.run([sys.executable, "-m", "sentinel", "--root", str(world.root), "shadow", "report",
                          "--db", str(world.db), "--json"], capture_output=True, text=True, check=True)
    [report] = json.loads(out.stdout)["markets"]["default"]
    policy = report["policy"]
    assert report["version"] == candidate and report["production_versions"] == [production]
    assert report["windows"] == len(rows)
    assert report["above_threshold"] == {
        "candidate": sum(r["score"] >= policy["trip_threshold"] for r in rows.values()),
        "production": sum(r["production_score"] >= report["production_policies"][production]["trip_threshold"]
                          for r in rows.values())}
    trips = report["trips"]
    assert report["extra_trips"] == sum(t["extra"] for t in trips["candidate"])
    assert report["missed_trips"] == sum(p["missed"] for p in trips["production"])
    assert report["false_trips"]["count"] <= len(trips["candidate"])
    assert report["false_trips"]["healthy_windows"] <= report["windows"]


def test_while_tripped_windows_go_k_to_a_proof_and_a_late_tail_goes_alone(world: World, long_feed: list[str],
                                                                           other_model_circuit: Path):
    """Issue #20 item 4: once the breaker is tripped by a report, the relay proves K consecutive windows in one
    batch proof and sends one submitBatch for them; a run short of K waits for the rest until K cadences after
    its first window, then goes alone. Every window is on chain once, in order, by the transaction the queue
    recorded. Issue #23: every window, batched or not, is shadow-scored once, across the kill and restart."""
    import numpy as np

    from sentinel.chain.encoding import to_wad
    from sentinel.data.io import read_market_csv
    from sentinel.model.export import onnx_scores
    from sentinel.versions import add_version, read_version
    from sentinel.zk.manifest import load_manifest

    k = int(load_manifest(ArtifactLayout(world.root))["batch"]["windows"])
    # The feed starts at a window scoring well above 0.5 (the lowest trip threshold the breaker takes; the
    # circuit's score is within the tiny build's fidelity tolerance of it): its own report trips the breaker.
    # Recovery is out of reach (30 calm windows), so every later window is reported while tripped. Such windows
    # are in a few slices of the long feed: this test takes the last slice with one (later in time than the
    # slices the other tests take, so the chain's clock only moves forward).
    src = world.tmp / "long.csv"
    src.write_text("\n".join(long_feed) + "\n")
    features = read_market_csv(src).features()
    ends = np.arange(49, len(features))  # 0-based end rows
    scores = onnx_scores(ArtifactLayout(world.root).onnx_model, np.stack([features[e - 49:e + 1] for e in ends]))
    fits = [(int(e) // SLICE, int(e) % SLICE) for e, score in zip(ends, scores, strict=True)
            if score >= 0.55 and 49 <= int(e) % SLICE < SLICE - 2 * k - 3]
    slice_no, end_row = fits[-1]  # end_row: 0-based within the slice
    world.lines = [long_feed[0], *long_feed[1 + slice_no * SLICE:1 + (slice_no + 1) * SLICE]]
    world.slice = slice_no
    s = end_row - 49  # the feed starts at this 0-based row of the slice: its first window is the tripping one
    config = load_config(world.root, env={})
    chain = connect(world.deployment, config, world.url)
    breaker = contract(chain, world.deployment, BREAKER)
    params = chain.call(breaker.functions.params(), "params")
    chain.transact(breaker.functions.setParams((to_wad(0.5), to_wad(0.4), 1, 30, 60, params[5], params[6])),
                   demo_key(0), "setParams")
    assert int(chain.call(breaker.functions.batchWindows(), "batchWindows")) == k
    candidate = add_version(ArtifactLayout(world.root), other_model_circuit, circuits=False)
    world.settings["SENTINEL_LIFECYCLE__SHADOW"] = candidate.id
    world.append(1 + s, 50 + s)
    relay = world.start()
    try:
        world.wait("the tripping report", lambda: chain.call(breaker.functions.tripped(), "tripped"), 120,
                   mine=True, process=relay)
        last_row = 50 + s + 2 * k + 2  # 1-based data row: 2k + 2 windows after the tripping one
        world.append(51 + s, 50 + s + k, rate=2)
        # SIGKILL while the first batch is being proved: after a restart its windows are batched and proved
        # again, and reported once
        world.wait("a batch being proved", lambda: sum(w["state"] == "proving" for w in world.windows()) == k,
                   120, process=relay)
        relay.kill()
        relay.wait(10)
        lead = world.windows()[k]["window_id"]  # the trip's window, then the batch's k
        assert [w["batch_of"] for w in world.windows() if w["state"] == "proving"] == [lead] * k
        relay = world.start()
        world.append(51 + s + k, last_row, rate=2)
        last_line = last_row - s + 1  # its line in the feed file (header, then rows 1 + s, ...)

        def tail_waits_or_all_final() -> bool:
            windows = world.windows()
            return bool(windows) and windows[-1]["end_line"] == last_line and all(
                w["state"] in FINAL | {"held"} for w in windows)

        world.wait("every window final or held", tail_waits_or_all_final, 300, mine=True, process=relay)
        held = [w for w in world.windows() if w["state"] == "held"]
        if held:  # the feed ended mid-batch: let the chain's clock pass the batch's wait
            anvil.warp(world.url, max(w["end_unix"] for w in held) + (k + 1) * 60)
        world.wait("every window settled", settled(world, last_line), 180, mine=True, process=relay)
    finally:
        world.stop(relay)
    windows = world.check_books()
    assert all(w["state"] == "confirmed" for w in windows), [(w["window_id"], w["state"]) for w in windows]
    by_tx: dict[str, list[int]] = {}
    for w in windows:
        by_tx.setdefault(w["tx_hash"], []).append(w["window_id"])
    sizes = [len(ids) for ids in by_tx.values()]
    assert sizes.count(k) >= 2, sizes  # at least two full batches while tripped
    assert all(size in (1, k) for size in sizes), sizes
    for ids in by_tx.values():
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # a batch is consecutive windows
    batched = [w for w in windows if w["batch_of"] is not None]
    assert all(w["batch_of"] == max(by_tx[w["tx_hash"]]) for w in batched)
    assert [t["window_id"] for t in world.txs()] == [max(ids) for ids in by_tx.values()]  # the lead holds the tx
    first = windows[0]
    assert first["batch_of"] is None and first["tripped"] == 1  # the trip itself went alone
    log = world.log.read_text()  # the restarted relay's
    assert "event=resume_proving" in log and "event=proved_batch" in log
    if held:
        assert "proved alone" in log
    state = chain.call(breaker.functions.state(), "state")
    assert int(state[0]) == windows[-1]["window_id"]
    _check_shadow_scores(world, windows, candidate.id, read_version(ArtifactLayout(world.root), "project").id)
