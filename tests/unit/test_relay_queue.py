"""The relay queue: transitions as single transactions, illegal ones refused, state survives reopening."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.config import DEFAULT_MARKET
from sentinel.errors import IllegalTransition, QueueError, RelayError
from sentinel.relay.queue import FINAL, SCHEMA_VERSION, STATES, TRANSITIONS, Queue, TxRow


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    q = Queue(tmp_path / "q.sqlite", clock=lambda: 1000.0)
    yield q
    q.close()


def tx(h: str, wid: int, nonce: int = 0, fee: int = 100) -> TxRow:
    return TxRow(h, wid, nonce, "0xraw" + h[2:], fee, fee // 10, 900_000, 1000.0)


def test_queue_is_wal_and_enqueue_ignores_known_ids(queue: Queue):
    assert queue.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert queue.enqueue([(10, 600, "f.csv", 51), (11, 660, "f.csv", 52)]) == [10, 11]
    assert queue.enqueue([(11, 660, "f.csv", 52), (12, 720, "f.csv", 53)]) == [12]
    assert [w.window_id for w in queue.windows("new")] == [10, 11, 12]
    assert queue.counts()["new"] == 3 and queue.max_id() == 12


def test_happy_path_transitions_and_attempts(queue: Queue):
    queue.enqueue([(7, 420, None, None)])
    queue.transition(7, "proving", count_attempt=True)
    queue.transition(7, "proved", bundle="b.json", score=0.97, prove_seconds=1.5)
    queue.record_tx(7, tx("0xaa", 7, nonce=3), from_state="proved")
    w = queue.get(7)
    assert (w.state, w.tx_hash, w.nonce, w.attempts) == ("submitted", "0xaa", 3, 1)  # attempts count proofs
    queue.record_tx(7, tx("0xbb", 7, nonce=3, fee=113), from_state="submitted")  # a fee bump keeps the state
    assert queue.get(7).tx_hash == "0xbb" and queue.get(7).attempts == 1
    assert [t.tx_hash for t in queue.txs(7)] == ["0xaa", "0xbb"]
    queue.transition(7, "confirmed", tripped=1, gas_used=883_000)
    last = queue.last_confirmed()
    assert last is not None and last.window_id == 7


@pytest.mark.parametrize("current", sorted(STATES))
def test_every_transition_outside_the_table_is_refused(tmp_path: Path, current: str):
    q = Queue(tmp_path / "q.sqlite")
    path_to = {"new": [], "proving": ["proving"], "proved": ["proving", "proved"],
               "submitted": ["proving", "proved", "@tx"], "confirmed": ["proving", "proved", "@tx", "confirmed"],
               "rejected": ["proving", "proved", "rejected"], "skipped": ["skipped"], "screened": ["screened"],
                   "held": ["held"],
               "failed": ["proving", "failed"]}
    for target in sorted(STATES):
        wid = len(q.windows()) + 1
        q.enqueue([(wid, wid * 60, None, None)])
        for step in path_to[current]:
            if step == "@tx":
                q.record_tx(wid, tx(f"0x{wid:04x}", wid), from_state="proved")
            else:
                q.transition(wid, step)
        assert q.get(wid).state == current
        if target in TRANSITIONS[current]:
            q.transition(wid, target)
            assert q.get(wid).state == target
        else:
            with pytest.raises(IllegalTransition, match=f"{current} -> {target}"):
                q.transition(wid, target)
            assert q.get(wid).state == current  # nothing half-done
    q.close()


def test_final_states_have_no_way_out():
    assert all(not TRANSITIONS[s] for s in FINAL)
    assert "skipped" in TRANSITIONS["new"] and "new" in TRANSITIONS["proving"]


def test_record_tx_refuses_a_window_in_the_wrong_state_and_writes_nothing(queue: Queue):
    queue.enqueue([(5, 300, None, None)])
    with pytest.raises(IllegalTransition):
        queue.record_tx(5, tx("0x01", 5), from_state="proved")
    assert queue.txs(5) == [] and queue.get(5).state == "new"


def test_unknown_fields_and_windows_are_errors(queue: Queue):
    queue.enqueue([(1, 60, None, None)])
    with pytest.raises(RelayError, match="unknown window field"):
        queue.transition(1, "proving", state="confirmed")
    with pytest.raises(RelayError, match="not in the queue"):
        queue.transition(99, "proving")
    with pytest.raises(RelayError, match="unknown relay state"):
        queue.transition(1, "mined")


def test_state_survives_reopening_and_feed_commit_is_atomic(tmp_path: Path):
    q = Queue(tmp_path / "q.sqlite")
    q.commit_feed({"files": {"a": {"offset": 10}}}, [(3, 180, "a", 4)])
    q.transition(3, "proving")
    q.close()
    again = Queue(tmp_path / "q.sqlite")
    assert again.get(3).state == "proving"
    assert again.get_meta("feed") == {"files": {"a": {"offset": 10}}}
    again.close()


def test_quarantine_records_a_row_once(queue: Queue):
    assert queue.quarantine("f.csv", 12, "blr", "not a number: 'x'", "2025,x,...") is True
    assert queue.quarantine("f.csv", 12, "blr", "not a number: 'x'", "2025,x,...") is False
    assert queue.quarantined() == [{"source": "f.csv", "line": 12, "column": "blr",
                                    "problem": "not a number: 'x'", "raw": "2025,x,..."}]


def test_a_file_that_is_not_a_queue_is_refused(tmp_path: Path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(QueueError, match="not a relay queue"):
        Queue(path)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("PRAGMA user_version=99")
    with pytest.raises(QueueError, match="schema version 99"):
        Queue(other)


def test_relay_status_cli_reads_the_queue(run_cli, tmp_path: Path):
    code, _, err = run_cli("--root", tmp_path, "relay", "status")
    assert code == 1 and "no relay queue yet" in err and "sentinel relay run" in err
    q = Queue(tmp_path / ".sentinel" / "relay" / "queue.sqlite")
    q.enqueue([(1, 60, "f.csv", 51), (2, 120, "f.csv", 52)])
    q.transition(1, "skipped", reason="newer window 2 pending (newest first)")
    q.quarantine("f.csv", 9, "blr", "missing value", "x")
    q.close()
    code, out, _ = run_cli("--root", tmp_path, "relay", "status", "--json")
    assert code == 0
    import json

    report = json.loads(out)
    assert report["counts"]["skipped"] == 1 and report["counts"]["new"] == 1
    assert report["all_accounted"] is False and report["unfinished"] == 1
    assert report["quarantined"][0]["line"] == 9
    code, out, _ = run_cli("--root", tmp_path, "relay", "status")
    assert "1 in progress" in out and "newer window 2 pending" in out and "line 9, column 'blr'" in out


def test_one_relay_per_queue_the_second_is_refused_until_the_first_is_gone(tmp_path):
    import subprocess
    import sys

    from sentinel.errors import QueueError
    from sentinel.relay.queue import QueueLock

    db = tmp_path / "queue.sqlite"
    hold = ("import sys, time; from pathlib import Path; from sentinel.relay.queue import QueueLock; "
            "QueueLock(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(db)], stdout=subprocess.PIPE, text=True)  # another relay
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(QueueError) as info:
            QueueLock(db)
        assert f"another relay (pid {holder.pid}) is using this queue" in str(info.value)
        assert "--db" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    lock = QueueLock(db)  # the OS dropped the dead holder's lock: no stale-lock cleanup needed
    with pytest.raises(QueueError):
        QueueLock(db)  # a second relay in the same process is refused too
    lock.release()
    QueueLock(db).release()


def test_a_read_only_view_sees_committed_windows_only_and_cannot_write(tmp_path: Path):
    """/healthz (another thread) and `relay status` (another process) read on their own read-only connection:
    never inside the daemon's open transaction, never writing."""
    path = tmp_path / "queue.sqlite"
    queue = Queue(path)
    queue.enqueue([(1, 60, None, None)])
    queue.db.execute("BEGIN IMMEDIATE")  # the daemon mid-transaction
    queue.db.execute("INSERT INTO windows (market, window_id, state, end_unix, seen_at, updated_at) "
                     "VALUES ('default', 2, 'new', 120, 0, 0)")
    view = Queue.read_only(path)
    try:
        assert view.counts()["new"] == 1 and view.max_id() == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            view.db.execute("DELETE FROM windows")
    finally:
        view.close()
        queue.db.execute("ROLLBACK")
        queue.close()
    with pytest.raises(QueueError, match="cannot read the queue"):
        Queue.read_only(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()


#: the tables as schema 3 (one market) wrote them, to test the migrations from a real old file
_V3_SCHEMA = """
CREATE TABLE windows (window_id INTEGER PRIMARY KEY, state TEXT NOT NULL, end_unix INTEGER NOT NULL, source TEXT,
    end_line INTEGER, attempts INTEGER NOT NULL DEFAULT 0, bundle TEXT, score REAL, float_score REAL,
    prove_seconds REAL, tx_hash TEXT, nonce INTEGER, block_number INTEGER, block_hash TEXT, gas_used INTEGER,
    tripped INTEGER, reason TEXT, last_error TEXT, batch_of INTEGER, seen_at REAL NOT NULL, proved_at REAL,
    submitted_at REAL, confirmed_at REAL, updated_at REAL NOT NULL);
CREATE INDEX windows_state ON windows(state);
CREATE TABLE txs (tx_hash TEXT PRIMARY KEY, window_id INTEGER NOT NULL REFERENCES windows(window_id),
    nonce INTEGER NOT NULL, raw_tx TEXT NOT NULL, max_fee INTEGER NOT NULL, max_priority_fee INTEGER NOT NULL,
    gas INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE INDEX txs_window ON txs(window_id);
CREATE TABLE quarantine (source TEXT NOT NULL, line INTEGER NOT NULL, column_ TEXT, problem TEXT NOT NULL,
    raw TEXT NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (source, line));
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO windows (window_id, state, end_unix, source, end_line, attempts, tx_hash, nonce, seen_at, updated_at)
    VALUES (5, 'submitted', 300, 'f.csv', 51, 1, '0xab', 7, 10.0, 11.0);
INSERT INTO windows (window_id, state, end_unix, source, end_line, seen_at, updated_at)
    VALUES (6, 'new', 360, 'f.csv', 52, 12.0, 12.0);
INSERT INTO txs VALUES ('0xab', 5, 7, '0xf8', 100, 2, 500000, 11.0);
INSERT INTO quarantine VALUES ('f.csv', 9, 'blr', 'missing value', 'x', 3.0);
INSERT INTO meta VALUES ('feed', '{"files": {"f.csv": {"offset": 10}}}');
"""


def _old_queue(path: Path, version: int) -> None:
    """A queue file as schema ``version`` (1, 2 or 3) left it: before 3 no batch_of, before 2 no float_score."""
    db = sqlite3.connect(path)
    db.executescript(_V3_SCHEMA)
    if version < 3:
        db.execute("ALTER TABLE windows DROP COLUMN batch_of")
    if version < 2:
        db.execute("ALTER TABLE windows DROP COLUMN float_score")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_queue_is_migrated_with_every_row_as_the_default_markets(tmp_path: Path, version: int):
    """Schema 1 lacked float_score, 2 batch_of, 3 the market: every window, transaction, quarantined row and the
    feed cursor survive as the default market's, and the schema is current."""
    path = tmp_path / "q.sqlite"
    _old_queue(path, version)
    q = Queue(path)
    try:
        assert q.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        five = q.get(5)
        assert (five.state, five.end_unix, five.source, five.end_line, five.attempts, five.tx_hash, five.nonce,
                five.seen_at) == ("submitted", 300, "f.csv", 51, 1, "0xab", 7, 10.0)
        assert five.float_score is None and five.batch_of is None and q.get(6).state == "new"
        assert [(t.tx_hash, t.window_id, t.nonce, t.gas) for t in q.txs(5)] == [("0xab", 5, 7, 500000)]
        assert q.quarantined() == [{"source": "f.csv", "line": 9, "column": "blr", "problem": "missing value",
                                    "raw": "x"}]
        assert q.get_meta("feed") == {"files": {"f.csv": {"offset": 10}}}
        assert q.submitted_nonces() == [7] and q.markets() == [DEFAULT_MARKET]
        q.transition(6, "screened", float_score=0.12, reason="calm")  # the new columns work
        assert q.get(6).float_score == 0.12
        assert q.db.execute("PRAGMA foreign_key_check").fetchall() == []
        tables = {r[0] for r in q.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"windows", "txs", "quarantine", "meta", "shadow_scores"}
    finally:
        q.close()
    assert Queue(path, market="eth").windows() == []  # another market sees none of them


#: the tables as schema 4 (keyed by market, no shadow scores) wrote them, with rows of two markets
_V4_SCHEMA = """
CREATE TABLE windows (market TEXT NOT NULL, window_id INTEGER NOT NULL, state TEXT NOT NULL,
    end_unix INTEGER NOT NULL, source TEXT, end_line INTEGER, attempts INTEGER NOT NULL DEFAULT 0, bundle TEXT,
    score REAL, float_score REAL, prove_seconds REAL, tx_hash TEXT, nonce INTEGER, block_number INTEGER,
    block_hash TEXT, gas_used INTEGER, tripped INTEGER, reason TEXT, last_error TEXT, batch_of INTEGER,
    seen_at REAL NOT NULL, proved_at REAL, submitted_at REAL, confirmed_at REAL, updated_at REAL NOT NULL,
    PRIMARY KEY (market, window_id));
CREATE INDEX windows_state ON windows(market, state);
CREATE TABLE txs (tx_hash TEXT PRIMARY KEY, market TEXT NOT NULL, window_id INTEGER NOT NULL,
    nonce INTEGER NOT NULL, raw_tx TEXT NOT NULL, max_fee INTEGER NOT NULL, max_priority_fee INTEGER NOT NULL,
    gas INTEGER NOT NULL, created_at REAL NOT NULL,
    FOREIGN KEY (market, window_id) REFERENCES windows(market, window_id));
CREATE INDEX txs_window ON txs(market, window_id);
CREATE TABLE quarantine (market TEXT NOT NULL, source TEXT NOT NULL, line INTEGER NOT NULL, column_ TEXT,
    problem TEXT NOT NULL, raw TEXT NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (market, source, line));
CREATE TABLE meta (market TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (market, key));
INSERT INTO windows (market, window_id, state, end_unix, source, end_line, attempts, float_score, tx_hash, nonce,
    seen_at, updated_at) VALUES ('default', 5, 'submitted', 300, 'f.csv', 51, 1, 0.4, '0xab', 7, 10.0, 11.0);
INSERT INTO windows (market, window_id, state, end_unix, reason, float_score, seen_at, updated_at)
    VALUES ('default', 6, 'screened', 360, 'calm', 0.1, 12.0, 12.0);
INSERT INTO windows (market, window_id, state, end_unix, seen_at, updated_at) VALUES ('eth', 5, 'new', 300, 13.0, 13.0);
INSERT INTO txs VALUES ('0xab', 'default', 5, 7, '0xf8', 100, 2, 500000, 11.0);
INSERT INTO quarantine VALUES ('eth', 'e.csv', 9, 'blr', 'missing value', 'x', 3.0);
INSERT INTO meta VALUES ('default', 'feed', '{"files": {"f.csv": {"offset": 10}}}');
PRAGMA user_version = 4;
"""


def test_a_schema_4_queue_gets_the_shadow_table_and_keeps_every_row(tmp_path: Path):
    from sentinel.relay.queue import ShadowRow

    path = tmp_path / "q.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_V4_SCHEMA)
    db.close()
    q, eth = Queue(path), Queue(path, market="eth")
    try:
        assert SCHEMA_VERSION == 5 and q.db.execute("PRAGMA user_version").fetchone()[0] == 5
        five, six = q.get(5), q.get(6)
        assert (five.state, five.end_unix, five.source, five.end_line, five.attempts, five.float_score, five.tx_hash,
                five.nonce, five.seen_at) == ("submitted", 300, "f.csv", 51, 1, 0.4, "0xab", 7, 10.0)
        assert (six.state, six.reason, six.float_score) == ("screened", "calm", 0.1)
        assert [(t.tx_hash, t.nonce, t.gas) for t in q.txs(5)] == [("0xab", 7, 500000)]
        assert q.get_meta("feed") == {"files": {"f.csv": {"offset": 10}}}
        assert [(w.window_id, w.state) for w in eth.windows()] == [(5, "new")]
        assert eth.quarantined()[0]["line"] == 9 and q.quarantined() == []
        assert q.markets() == ["default", "eth"] and q.shadow_scores() == []
        row = ShadowRow(6, "v-aaaaaaaaaaaa", 0.7, "v-bbbbbbbbbbbb", 0.1, 360, 20.0)
        assert q.record_shadow([row]) == 1
        assert q.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        q.close()
        eth.close()
    again = Queue.read_only(path)  # reopened: nothing migrated twice, the shadow row is there
    try:
        assert [r.to_dict() for r in again.shadow_scores()] == [row.to_dict()] and len(again.windows()) == 2
    finally:
        again.close()


def test_shadow_scores_are_recorded_once_per_window_and_version_per_market(queue: Queue, tmp_path: Path):
    from sentinel.relay.queue import ShadowRow

    rows = [ShadowRow(w, v, 0.5, "v-prod00000000", 0.2, 60 * w, 1000.0) for w in (1, 2) for v in ("v-a", "v-b")]
    assert queue.record_shadow(rows) == 4
    # a restart scoring window 2 again (another score even) adds nothing: the first row stands
    assert queue.record_shadow([ShadowRow(2, "v-a", 0.9, "v-prod00000000", 0.3, 120, 2000.0)]) == 0
    assert queue.shadowed(2) == {"v-a", "v-b"} and queue.shadowed(3) == set()
    assert [(r.window_id, r.score) for r in queue.shadow_scores("v-a")] == [(1, 0.5), (2, 0.5)]
    other = Queue(queue.path, market="eth")
    try:
        assert other.shadow_scores() == [] and other.shadowed(2) == set()
        assert other.record_shadow([ShadowRow(2, "v-a", 0.1, "v-prod00000000", 0.1, 120, 3.0)]) == 1
        assert queue.shadow_markets() == ["default", "eth"]
    finally:
        other.close()


def test_markets_share_one_file_but_never_a_row(tmp_path: Path):
    """Window ids repeat across markets (one cadence): each market's view reads and moves only its own rows; the
    signer lane's unmined nonces span every market."""
    path = tmp_path / "q.sqlite"
    eth, btc = Queue(path, market="eth"), Queue(path, market="btc")
    try:
        eth.commit_feed({"cursor": "eth"}, [(5, 300, "eth.csv", 51)])
        btc.commit_feed({"cursor": "btc"}, [(5, 300, "btc.csv", 51), (6, 360, "btc.csv", 52)])
        assert [w.window_id for w in eth.windows()] == [5] and [w.window_id for w in btc.windows()] == [5, 6]
        assert eth.get_meta("feed") == {"cursor": "eth"} and btc.get_meta("feed") == {"cursor": "btc"}
        eth.transition(5, "proving")
        eth.transition(5, "proved", bundle="b", score=0.9)
        eth.record_tx(5, TxRow("0x01", 5, 3, "0xf8", 10, 1, 100, 1.0), from_state="proved")
        assert btc.get(5).state == "new" and btc.txs(5) == [] and [t.tx_hash for t in eth.txs(5)] == ["0x01"]
        assert btc.submitted_nonces() == [3] == eth.submitted_nonces()
        assert eth.counts()["submitted"] == 1 and btc.counts()["new"] == 2 and btc.max_id() == 6
        assert eth.quarantine("eth.csv", 9, None, "bad", "x") and btc.quarantined() == []
        assert sorted(eth.markets()) == ["btc", "eth"]
        with pytest.raises(RelayError, match="market name 'ETH!'"):
            Queue(path, market="ETH!")
    finally:
        eth.close()
        btc.close()


def _batch(queue: Queue) -> None:
    queue.enqueue([(w, w * 60, "f.csv", w) for w in range(10, 15)])
    queue.transition(10, "held", reason="waiting for the batch")
    lead = queue.start_batch([10, 11, 12, 13])
    assert lead.window_id == 13 and lead.state == "proving"


def test_a_batch_moves_as_one_and_its_lead_holds_the_transaction(queue: Queue):
    _batch(queue)
    assert [(w.window_id, w.state, w.batch_of, w.attempts) for w in queue.batch(11)] == [
        (10, "proving", 13, 1), (11, "proving", 13, 1), (12, "proving", 13, 1), (13, "proving", 13, 1)]
    assert queue.get(14).state == "new" and queue.get(14).batch_of is None
    queue.transition(13, "proved", bundle="batch.json", per_window={w: {"score": w / 100} for w in range(10, 14)})
    assert [(w.state, w.bundle, w.score) for w in queue.batch(10)] == [
        ("proved", "batch.json", 0.10), ("proved", "batch.json", 0.11), ("proved", "batch.json", 0.12),
        ("proved", "batch.json", 0.13)]
    queue.record_tx(13, tx("0xaa", 13, nonce=4), from_state="proved")
    assert {(w.state, w.tx_hash, w.nonce) for w in queue.batch(13)} == {("submitted", "0xaa", 4)}
    assert [t.window_id for t in queue.all_txs()] == [13]  # one transaction, on the lead
    queue.update(13, block_number=9, per_window={13: {"gas_used": 600_000}})
    queue.transition(13, "confirmed", per_window={10: {"tripped": 1}, 13: {"tripped": 0}})
    rows = queue.batch(12)
    assert [(w.state, w.block_number, w.gas_used, w.tripped) for w in rows] == [
        ("confirmed", 9, None, 1), ("confirmed", 9, None, None), ("confirmed", 9, None, None),
        ("confirmed", 9, 600_000, 0)]


def test_a_batch_member_cannot_move_alone_and_shared_fields_cannot_differ(queue: Queue):
    _batch(queue)
    with pytest.raises(RelayError, match="in the batch led by window 13"):
        queue.transition(11, "new")
    with pytest.raises(RelayError, match="differ per window of a batch"):
        queue.transition(13, "proved", score=0.5)
    assert {w.state for w in queue.batch(13)} == {"proving"}  # nothing half-written
    with pytest.raises(IllegalTransition):
        queue.start_batch([13, 14])  # 13 is in a batch already
    with pytest.raises(RelayError, match="consecutive"):
        queue.start_batch([12, 14])


def test_a_batch_that_goes_back_to_new_is_dissolved(queue: Queue):
    _batch(queue)
    queue.transition(13, "new", last_error="prover died")
    assert [(w.state, w.batch_of) for w in queue.windows()] == [("new", None)] * 5
    queue.start_batch([11, 12, 13, 14])  # its windows can be batched again, differently
    assert queue.get(10).batch_of is None and queue.get(11).batch_of == 14


def test_a_batch_goes_on_chain_as_one_unit_judged_by_its_oldest_window(queue: Queue):
    """The review's R1: a stale oldest window takes its whole batch out, in one move, and the next unit is
    chosen among the rest (no member of the skipped batch is picked on its own)."""
    from sentinel.relay.daemon import next_in_order, submission_units

    _batch(queue)  # windows 10-13 in a batch led by 13, window 14 alone
    queue.transition(13, "proved", per_window={w: {"score": 0.9} for w in range(10, 14)})
    queue.transition(14, "proving")
    queue.transition(14, "proved")
    units = submission_units(queue.windows("proved"))
    assert units == {10: 13, 14: 14}
    ends = {first: queue.get(first).end_unix for first in units}
    chosen, skips = next_in_order(ends, -1, oldest_end=ends[10] + 1, stage="submitted")  # window 10 is stale
    assert chosen == 14 and [first for first, _ in skips] == [10]
    queue.transition(units[10], "skipped", reason="stale")
    assert {w.window_id: w.state for w in queue.windows()} == {10: "skipped", 11: "skipped", 12: "skipped",
                                                               13: "skipped", 14: "proved"}
