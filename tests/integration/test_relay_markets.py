"""Several markets, one relay process, one signer, on a real Anvil (issue #21 item 5).

Each market has its own feed, breaker (deployed by ``deploy_project`` from the project's ``[markets.<name>]``
tables) and attester services (``sentinel attester serve --market``). One market's feed crashes and its breaker
trips; the others stay open. One market's feed turns bad mid-run: only that market waits, the others go on.
On a two-node Ray cluster, a prover actor killed mid-proof has its window proved again and reported once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil
from sentinel.chain.breaker import BREAKER, connect, contract
from sentinel.chain.deploy import Deployments, deploy_project
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from sentinel.relay.replay import replay
from tests.support.attesters import AttesterProcess
from tests.support.projects import linked_project

pytestmark = pytest.mark.integration

MARKETS = ("eth", "btc", "sol")  #: eth crashes, btc stays calm, sol's feed turns bad
ROWS = 56  #: rows per market feed: the first window ends at row 50 (eth: the trip, then three pairs)
BAD_FROM = 53  #: sol's rows from here on are malformed
FINAL = {"confirmed", "rejected", "skipped", "failed", "screened"}


def _lines(tiny_circuit: Path) -> tuple[str, list[str], np.ndarray]:
    """Header, data rows and the tiny model's score of each window (by 0-based end row) of a long feed."""
    from sentinel.data.io import market_csv_bytes
    from sentinel.data.synthetic import generate
    from sentinel.model.export import onnx_scores

    data = generate(8, seed=33)
    lines = market_csv_bytes(data).decode().splitlines()
    features = data.features()
    ends = np.arange(49, len(features))
    scores = np.full(len(features), np.nan)
    scores[ends] = onnx_scores(ArtifactLayout(tiny_circuit).onnx_model,
                               np.stack([features[e - 49:e + 1] for e in ends]))
    return lines[0], lines[1:], scores


def _slice(rows: list[str], scores: np.ndarray, *, hot: bool, after: int = 0) -> tuple[int, list[str]]:
    """The first ROWS consecutive rows from ``after`` on whose first window scores >= 0.6 (hot), or whose windows
    all score < 0.46 (calm: the trip threshold is 0.5, the lowest the breaker takes); and where they start."""
    for start in range(after, len(rows) - ROWS, 7):
        window_scores = scores[start + 49:start + ROWS]
        if (hot and window_scores[0] >= 0.6) or (not hot and float(np.max(window_scores)) < 0.46):
            return start, rows[start:start + ROWS]
    raise AssertionError(f"no {'hot' if hot else 'calm'} slice in the generated feed")


def _on_grid(rows: list[str], start: float) -> list[str]:
    """The rows with their timestamps moved onto one grid (every market's row i at the same minute)."""
    def stamp(i: int) -> str:
        return datetime.fromtimestamp(start + 60 * i, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return [f"{stamp(i)},{row.split(',', 1)[1]}" for i, row in enumerate(rows)]


@contextmanager
def _world(tiny_circuit: Path, tmp: Path, markets: tuple[str, ...] = MARKETS) -> Iterator[dict[str, Any]]:
    """A project with ``markets`` (eth hot, the others calm; sol's feed turns bad), deployed on its own Anvil, with
    two attester services per market."""
    header, rows, scores = _lines(tiny_circuit)
    start = 1_780_000_000.0
    _, hot = _slice(rows, scores, hot=True)
    calm_at, calm = _slice(rows, scores, hot=False)
    _, other_calm = _slice(rows, scores, hot=False, after=calm_at + ROWS)
    sources = {"eth": _on_grid(hot, start), "btc": _on_grid(calm, start), "sol": _on_grid(other_calm, start)}
    bad = [*sources["sol"][:BAD_FROM - 1],
           *[f"{row.split(',', 1)[0]},not-a-number,1,1,1,false" for row in sources["sol"][BAD_FROM - 1:]]]
    src = {}
    for name, lines in {**sources, "sol-bad": bad}.items():
        src[name] = tmp / "src" / f"{name}.csv"
        src[name].parent.mkdir(parents=True, exist_ok=True)
        src[name].write_text("\n".join([header, *lines]) + "\n")

    (tmp / "project").mkdir()
    root = linked_project(tiny_circuit, tmp / "project")
    node_port = anvil.free_port()
    rpc = f"http://127.0.0.1:{node_port}"
    parties = {m: [AttesterProcess(demo_key(2 + n), tmp / "parties" / f"{m}-{n}", root, rpc, market=m)
                   for n in range(2)] for m in markets}
    tables = "".join(f'\n[markets.{m}]\nfeed = "feeds/{m}"\nattesters = {json.dumps([p.url for p in parties[m]])}\n'
                     for m in markets)
    (root / "sentinel.toml").write_text((root / "sentinel.toml").read_text() + tables)
    process = anvil.spawn(node_port, 31337, log=tmp / "anvil.log", timestamp=int(start))
    started: list[AttesterProcess] = []
    try:
        config = load_config(root, {"chain.trip_threshold": 0.5, "chain.reset_threshold": 0.4, "chain.trip_after": 1,
                                    "chain.reset_after": 30, "chain.cooldown_seconds": 60,
                                    "chain.max_age_seconds": 1800}, env={})
        deployments = deploy_project(ArtifactLayout(root), config, rpc)
        for m in markets:
            for party in parties[m]:
                party.home.mkdir(parents=True, exist_ok=True)
                started.append(party.launch())
        for party in started:
            party.wait_answering()
        yield {"root": root, "rpc": rpc, "src": src, "parties": parties, "deployments": deployments, "tmp": tmp,
               "markets": markets}
    finally:
        for party in started:
            party.stop()
        anvil.stop_process(process.pid)


def start_of(src: Path, row: int) -> float:
    """Unix time of data row ``row`` (1-based) of a feed file."""
    from sentinel.relay.replay import row_unix

    return row_unix(src.read_text().splitlines()[row])


def _windows(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM windows ORDER BY market, window_id")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test server
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait(what: str, condition: Any, timeout: float, relay: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if relay.poll() is not None:
            pytest.fail(f"relay exited with {relay.returncode} waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}:\n{log.read_text()[-4000:]}")


def _run(world: dict[str, Any], **settings: str) -> tuple[list[dict[str, Any]], Path, dict[str, Any], str]:
    """Run ``sentinel relay run`` (every market) while every feed is replayed to its end; returns the queue's windows,
    the relay's log, its /healthz and its /metrics at the end."""
    root, rpc, src, parties, markets = world["root"], world["rpc"], world["src"], world["parties"], world["markets"]
    tmp: Path = world["tmp"]
    feed = {m: root / "feeds" / m / "market_depth.csv" for m in markets}
    # every market's feed and its attesters' copies take row i together; sol's turn malformed at BAD_FROM
    copies: list[tuple[Path, Path | None]] = []
    for m in markets:
        source = src["sol-bad"] if m == "sol" else src[m]
        copies += [(p.feed / "market_depth.csv", source) for p in parties[m]]
        if m != "eth":
            copies.append((feed[m], source))
    db, log, port = tmp / "queue.sqlite", tmp / "relay.log", anvil.free_port()
    replay(src["eth"], feed["eth"], rows_per_second=1000, first=1, last=50, chain_rpc=rpc, copies=copies)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update({"SENTINEL_RELAY__INTERVAL_SECONDS": "0.2", "SENTINEL_RELAY__REPORT": "every",
                "SENTINEL_RELAY__ATTESTER_RETRY_SECONDS": "0.5", "SENTINEL_RELAY__BACKOFF_MAX_SECONDS": "1",
                "SENTINEL_RELAY__CONFIRMATIONS": "1",
                **{f"SENTINEL_RELAY__{k.upper()}": v for k, v in settings.items()}})
    with log.open("wb") as out:
        relay = subprocess.Popen([sys.executable, "-m", "sentinel", "--root", str(root), "relay", "run", "--db",
                                  str(db), "--rpc", rpc, "--metrics-port", str(port)],
                                 stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait("every market's first window on chain", lambda: {w["market"] for w in _windows(db)
                                                               if w["state"] == "confirmed"} == set(markets),
              180, relay, log)
        replay(src["eth"], feed["eth"], rows_per_second=2, first=51, last=ROWS, chain_rpc=rpc, copies=copies)
        # eth is tripped, so its windows go two to a proof: a last one short of its pair is held until chain time
        # passes its pair's due time (what the next rows' minutes would do)
        anvil.warp(rpc, int(start_of(src["eth"], ROWS)) + 3 * 60)

        def settled() -> bool:
            windows = _windows(db)
            ends = {m: max((w["end_line"] for w in windows if w["market"] == m), default=0) for m in markets}
            return (ends["eth"] == ends["btc"] == ROWS + 1 and all(w["state"] in FINAL for w in windows))
        _wait("eth and btc read to the end, every window final", settled, 420, relay, log)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        health = {"status": status, **json.loads(body)}
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(60) == 0, log.read_text()[-4000:]
    return _windows(db), log, health, metrics.decode()


def _check_books(world: dict[str, Any], windows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every market: each window on its own breaker once, by the transaction the queue holds; only eth tripped; eth
    and btc reported to the end of their feeds; every transaction of the one signer its own nonce."""
    markets, root, rpc = world["markets"], world["root"], world["rpc"]
    deployments: Deployments = world["deployments"]
    by_market = {m: [w for w in windows if w["market"] == m] for m in markets}
    config = load_config(root, env={})
    for m in markets:
        deployment = deployments.market(m)
        chain = connect(deployment, config, rpc)
        breaker = contract(chain, deployment, BREAKER)
        reports = breaker.events.Report().get_logs(from_block=deployment.block)
        on_chain = {int(e["args"]["windowId"]): "0x" + bytes(e["transactionHash"]).hex() for e in reports}
        assert len(on_chain) == len(reports), f"{m}: a window reported twice"
        confirmed = {w["window_id"]: w["tx_hash"] for w in by_market[m] if w["state"] == "confirmed"}
        assert confirmed == on_chain, m
        tripped = bool(chain.call(breaker.functions.tripped(), "tripped"))
        assert tripped is (m == "eth"), f"{m} tripped={tripped}"
    for m in ("eth", "btc"):
        assert [w["end_line"] for w in by_market[m]] == list(range(51, ROWS + 2)), m
        assert all(w["state"] == "confirmed" for w in by_market[m]), [(w["window_id"], w["state"])
                                                                       for w in by_market[m]]
    # one signer: every transaction of every market has its own nonce (a batch's windows share their transaction)
    nonce_of = {w["tx_hash"]: w["nonce"] for w in windows if w["state"] == "confirmed"}
    assert len(set(nonce_of.values())) == len(nonce_of) > len(markets)
    assert any(len([w for w in by_market["eth"] if w["tx_hash"] == tx]) == 2 for tx in nonce_of)  # a batch
    return by_market


def _proving_actors() -> list[int]:
    """Pids of Ray prover actors busy proving now (Ray titles the process ``ray::ProverActor.prove`` meanwhile)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::ProverActor.prove" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_one_relay_three_markets_on_ray_one_trips_one_waits_on_a_bad_feed_a_killed_actor_is_survived(
        ray_cluster: str, tiny_circuit: Path, tmp_path: Path):
    """One relay, three markets, proving on two Ray nodes (relay.executor = ray): eth trips, btc stays open, sol
    waits at its bad rows while the others go on; a prover actor is SIGKILLed while it proves: the window goes to
    the other actor (Ray restarts the dead one) and reaches the chain once. (One scenario: the local executor's
    markets run through the relay in test_burst_chain.)"""
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_proving_actor() -> None:
        while not stop.is_set() and not killed:
            pids = _proving_actors()
            if pids:
                time.sleep(0.05)  # inside the proof
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    with _world(tiny_circuit, tmp_path) as world:
        killer = threading.Thread(target=kill_one_proving_actor, daemon=True)
        killer.start()
        try:
            windows, log, health, text = _run(world, executor="ray", ray_address=ray_cluster, prover_threads="1")
        finally:
            stop.set()
            killer.join(5)
        by_market = _check_books(world, windows)
    db = world["tmp"] / "queue.sqlite"
    # sol waited at its bad rows: no window past them, each bad row quarantined in sol's part of the queue only
    assert max(w["end_line"] for w in by_market["sol"]) == BAD_FROM  # the last good row's line
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    quarantined = conn.execute("SELECT market, COUNT(*) FROM quarantine GROUP BY market").fetchall()
    conn.close()
    assert quarantined == [("sol", ROWS - BAD_FROM + 1)], quarantined
    # /healthz has a section per market; /metrics labels every market
    assert set(health["markets"]) == set(MARKETS) and health["status"] == 200
    assert health["markets"]["eth"]["breaker_tripped"] is True and health["markets"]["btc"]["breaker_tripped"] is False
    for m in MARKETS:
        assert f'sentinel_relay_windows{{market="{m}",state="confirmed"}}' in text
    assert f'sentinel_relay_quarantined_rows_total{{market="sol"}} {ROWS - BAD_FROM + 1:.1f}' in text
    assert 'sentinel_relay_quarantined_rows_total{market="eth"}' not in text or \
        'sentinel_relay_quarantined_rows_total{market="eth"} 0.0' in text
    # the killed actor's window was proved again, and both nodes proved
    assert killed, "no actor was caught proving"
    lines = log.read_text()
    assert "event=prove_requeued" in lines, lines[-3000:]
    workers = {w.split("worker=")[1].split()[0] for w in lines.splitlines() if "event=proved" in w}
    assert len({w.split("@")[1] for w in workers if "@" in w}) == 2, workers  # both nodes proved
    assert all(w["state"] == "confirmed" for m in by_market.values() for w in m)
