"""The relay's durable queue: SQLite in WAL mode, one row per (market, window id), a guarded state machine.

Every change is one SQLite transaction, so a crash (even ``kill -9``) leaves
either the old or the new state, never half of one. The state machine is a
table: a transition not in :data:`TRANSITIONS` is refused with
:class:`~sentinel.errors.IllegalTransition`. A signed transaction is recorded
(hash and raw bytes) in the same transaction that moves its window to
``submitted``, *before* it is broadcast, so after a crash the relay
re-broadcasts exactly those bytes instead of signing something new.

States::

    new -> proving -> proved -> submitted -> confirmed
     |-> held     (waiting for the rest of a K-window batch while the breaker is tripped; leaves like ``new``)
     |-> screened (reporting policy ``risk``: its float score cannot move the breaker; score and reason kept)
     |        |          |          |-> rejected   (the breaker refuses it for good: already reported, stale)
     |        |          |          |-> failed     (other reverts, max attempts)
     |        |          |          |-> proved     (our nonce was taken by a foreign tx and none of ours was mined)
     |        |          |          '-> new        (proved with a model whose verifier the breaker no longer calls)
     |        |          '-> skipped | rejected | failed | new (the verifier was upgraded before it was sent)
     |        '-> new (crash or error while proving: retried) | skipped | failed
     '-> skipped (a newer window is pending: the breaker only takes increasing ids) | failed

One queue serves every market of a relay: a :class:`Queue` is one market's view
of the file (its ``market`` names it; window ids repeat across markets, which
share a cadence), and the tables key everything by market. What crosses markets
is the signer lane's nonces: :meth:`Queue.submitted_nonces` reads every market's.

A batch (K consecutive windows in one proof and one ``submitBatch``) is K
rows whose ``batch_of`` is the batch's lead, its newest window. They move
together: a transition, an update or a recorded transaction of the lead
applies to every row of its batch in the same SQLite transaction (fields that
differ per window go in ``per_window``), and the lead alone holds the
batch's transactions. A batch that goes back to ``new`` is dissolved.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.config import DEFAULT_MARKET, MARKET_NAME
from sentinel.errors import IllegalTransition, QueueError, RelayError


class QueueLock:
    """One relay per queue: an exclusive ``flock`` on ``<queue>.lock``, which the OS drops when the process dies.

    Two relays on one queue (a ``relay once`` from cron beside a running ``relay run``) would reset each
    other's windows and race for nonces. The lock file holds the holder's pid, for the error message.
    """

    def __init__(self, queue_path: Path) -> None:
        self.queue_path = Path(queue_path)
        self.path = self.queue_path.with_name(self.queue_path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise QueueError(self.queue_path, f"another relay (pid {holder}) is using this queue",
                             hint="stop it first, or give this relay a queue of its own with --db") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

#: 2 added windows.float_score (and the screened state), 3 windows.batch_of (and the held state), 4 the market
#: (every table keyed by it; older queues' rows become the default market's), 5 the shadow_scores table (candidate
#: versions' float scores beside production's, :mod:`sentinel.relay.shadow`); older queues are migrated
SCHEMA_VERSION = 5


STATES = ("new", "held", "screened", "proving", "proved", "submitted", "confirmed", "rejected", "skipped", "failed")
FINAL = frozenset({"screened", "confirmed", "rejected", "skipped", "failed"})
#: not final, but waiting on purpose: nothing for the relay to do until more of the feed arrives
WAITING = frozenset({"held"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"held", "screened", "proving", "skipped", "failed"}),
    "held": frozenset({"screened", "proving", "skipped", "failed"}),
    "screened": frozenset(),
    "proving": frozenset({"proved", "new", "skipped", "failed"}),
    "proved": frozenset({"submitted", "skipped", "rejected", "failed", "new"}),
    "submitted": frozenset({"confirmed", "rejected", "failed", "proved", "new"}),
    "confirmed": frozenset(),
    "rejected": frozenset(),
    "skipped": frozenset(),
    "failed": frozenset(),
}

_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS windows (
    market        TEXT NOT NULL,
    window_id     INTEGER NOT NULL,
    state         TEXT NOT NULL,
    end_unix      INTEGER NOT NULL,
    source        TEXT,
    end_line      INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    bundle        TEXT,
    score         REAL,
    float_score   REAL,
    prove_seconds REAL,
    tx_hash       TEXT,
    nonce         INTEGER,
    block_number  INTEGER,
    block_hash    TEXT,
    gas_used      INTEGER,
    tripped       INTEGER,
    reason        TEXT,
    last_error    TEXT,
    batch_of      INTEGER,
    seen_at       REAL NOT NULL,
    proved_at     REAL,
    submitted_at  REAL,
    confirmed_at  REAL,
    updated_at    REAL NOT NULL,
    PRIMARY KEY (market, window_id)
);
CREATE INDEX IF NOT EXISTS windows_state ON windows(market, state);
CREATE TABLE IF NOT EXISTS txs (
    tx_hash          TEXT PRIMARY KEY,
    market           TEXT NOT NULL,
    window_id        INTEGER NOT NULL,
    nonce            INTEGER NOT NULL,
    raw_tx           TEXT NOT NULL,
    max_fee          INTEGER NOT NULL,
    max_priority_fee INTEGER NOT NULL,
    gas              INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    FOREIGN KEY (market, window_id) REFERENCES windows(market, window_id)
);
CREATE INDEX IF NOT EXISTS txs_window ON txs(market, window_id);
CREATE TABLE IF NOT EXISTS quarantine (
    market   TEXT NOT NULL,
    source   TEXT NOT NULL,
    line     INTEGER NOT NULL,
    column_  TEXT,
    problem  TEXT NOT NULL,
    raw      TEXT NOT NULL,
    seen_at  REAL NOT NULL,
    PRIMARY KEY (market, source, line)
);
CREATE TABLE IF NOT EXISTS meta (
    market TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (market, key)
);
"""
#: schema 5: one row per (market, window, candidate version) the relay shadow-scored, with production's score of
#: the same window and the version that was production then (it changes at a verifier upgrade)
_SHADOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadow_scores (
    market             TEXT NOT NULL,
    window_id          INTEGER NOT NULL,
    version            TEXT NOT NULL,
    score              REAL NOT NULL,
    production_version TEXT NOT NULL,
    production_score   REAL NOT NULL,
    end_unix           INTEGER NOT NULL,
    scored_at          REAL NOT NULL,
    PRIMARY KEY (market, window_id, version)
);
CREATE INDEX IF NOT EXISTS shadow_version ON shadow_scores(market, version, window_id);
"""
_SCHEMA = _SCHEMA_V4 + _SHADOW_SCHEMA

#: schema 3 -> 4: each table rebuilt with its market column (SQLite cannot change a primary key in place);
#: every existing row becomes the default market's. Columns are named: a queue migrated from schema 1 or 2 has
#: float_score and batch_of last.
_WINDOW_COLUMNS = ("window_id, state, end_unix, source, end_line, attempts, bundle, score, float_score, "
                   "prove_seconds, tx_hash, nonce, block_number, block_hash, gas_used, tripped, reason, last_error, "
                   "batch_of, seen_at, proved_at, submitted_at, confirmed_at, updated_at")
_TX_COLUMNS = "tx_hash, window_id, nonce, raw_tx, max_fee, max_priority_fee, gas, created_at"
_QUARANTINE_COLUMNS = "source, line, column_, problem, raw, seen_at"
# Constants only are interpolated (no input reaches this text).
_TO_V4 = f"""
BEGIN IMMEDIATE;
DROP INDEX IF EXISTS windows_state;
DROP INDEX IF EXISTS txs_window;
ALTER TABLE txs RENAME TO txs_v3;
ALTER TABLE windows RENAME TO windows_v3;
ALTER TABLE quarantine RENAME TO quarantine_v3;
ALTER TABLE meta RENAME TO meta_v3;
{_SCHEMA_V4}
INSERT INTO windows (market, {_WINDOW_COLUMNS}) SELECT '{DEFAULT_MARKET}', {_WINDOW_COLUMNS} FROM windows_v3;
INSERT INTO txs (market, {_TX_COLUMNS}) SELECT '{DEFAULT_MARKET}', {_TX_COLUMNS} FROM txs_v3;
INSERT INTO quarantine (market, {_QUARANTINE_COLUMNS})
    SELECT '{DEFAULT_MARKET}', {_QUARANTINE_COLUMNS} FROM quarantine_v3;
INSERT INTO meta (market, key, value) SELECT '{DEFAULT_MARKET}', key, value FROM meta_v3;
DROP TABLE txs_v3;
DROP TABLE windows_v3;
DROP TABLE quarantine_v3;
DROP TABLE meta_v3;
PRAGMA user_version = 4;
COMMIT;
"""  # noqa: S608
#: schema 4 -> 5: the shadow table added beside the others (no existing row changes)
_TO_V5 = f"""
BEGIN IMMEDIATE;
{_SHADOW_SCHEMA}
PRAGMA user_version = 5;
COMMIT;
"""

_WINDOW_FIELDS = frozenset({
    "bundle", "score", "float_score", "prove_seconds", "tx_hash", "nonce", "block_number", "block_hash", "gas_used",
    "tripped", "reason", "last_error", "proved_at", "submitted_at", "confirmed_at", "source", "end_line",
})
#: what a batch's rows do not share (each window's own proof output, float score and outcome)
_OWN_FIELDS = frozenset({"score", "float_score", "tripped", "gas_used", "prove_seconds"})


@dataclass(frozen=True)
class WindowRow:
    """One window of the queue."""

    window_id: int
    state: str
    end_unix: int
    source: str | None
    end_line: int | None
    attempts: int
    bundle: str | None
    score: float | None
    prove_seconds: float | None
    tx_hash: str | None
    nonce: int | None
    block_number: int | None
    block_hash: str | None
    gas_used: int | None
    tripped: int | None
    reason: str | None
    last_error: str | None
    seen_at: float
    proved_at: float | None
    submitted_at: float | None
    confirmed_at: float | None
    updated_at: float
    float_score: float | None = None  #: the float model's score (screened windows: why they were not proved)
    batch_of: int | None = None  #: the lead (newest window) of the batch proof this window is in, if any

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TxRow:
    """One signed transaction (a window may have several: fee bumps share its nonce)."""

    tx_hash: str
    window_id: int
    nonce: int
    raw_tx: str
    max_fee: int
    max_priority_fee: int
    gas: int
    created_at: float


@dataclass(frozen=True)
class ShadowRow:
    """One candidate version's float score of one window, beside production's (schema 5, ``shadow_scores``)."""

    window_id: int
    version: str
    score: float
    production_version: str  #: the version the relay proved with when it scored the window
    production_score: float
    end_unix: int
    scored_at: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def check_market(name: str) -> str:
    """``name`` if it can name a market (a queue key, a metric label, a log field), else RelayError."""
    if not MARKET_NAME.fullmatch(name):
        raise RelayError(f"market name {name!r} is not 1-32 of a-z, 0-9, '_' and '-'")
    return name


def _fields(row: sqlite3.Row) -> dict[str, Any]:
    """A row's columns but its market (a view knows its own)."""
    fields = dict(row)
    fields.pop("market", None)
    return fields


def _window(row: sqlite3.Row) -> WindowRow:
    return WindowRow(**_fields(row))


def _tx(row: sqlite3.Row) -> TxRow:
    return TxRow(**_fields(row))


class Queue:
    """One market's view of the relay's SQLite queue (WAL, synchronous=FULL: a committed change survives a crash).

    Every read and write is confined to ``market``; several views (one per market, each with its own connection)
    may share one file inside one relay process.
    """

    def __init__(self, path: Path, clock: Any = time.time, *, market: str = DEFAULT_MARKET) -> None:
        self.path = Path(path)
        self.clock = clock
        self.market = check_market(market)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, 2, 3, 4, SCHEMA_VERSION):
                raise QueueError(self.path, f"queue schema version {version}, this relay reads {SCHEMA_VERSION}")
            if version == 1:  # written before the reporting policy: same rows, one more column
                self.db.execute("ALTER TABLE windows ADD COLUMN float_score REAL")
            if version in (1, 2):  # written before batch proofs: same rows, one more column
                self.db.execute("ALTER TABLE windows ADD COLUMN batch_of INTEGER")
            if version in (1, 2, 3):  # written for one market: its rows become the default market's
                self.db.execute("PRAGMA foreign_keys=OFF")  # the tables are renamed and rebuilt under their keys
                self.db.executescript(_TO_V4)
                self.db.execute("PRAGMA foreign_keys=ON")
                version = 4
            if version == 4:  # written before shadow scoring: one more table
                self.db.executescript(_TO_V5)
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise QueueError(self.path, f"not a relay queue: {exc}") from exc

    @classmethod
    def read_only(cls, path: Path, *, market: str = DEFAULT_MARKET) -> Queue:
        """A view of the queue on its own read-only connection (``/healthz`` in the status thread, ``relay
        status`` beside a running relay): it never writes, never holds a write lock, and never shares the
        daemon's connection or sees its uncommitted transaction."""
        view = cls.__new__(cls)
        view.path, view.clock, view.market = Path(path), time.time, check_market(market)
        try:
            view.db = sqlite3.connect(f"{view.path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0,
                                      check_same_thread=False)
            view.db.row_factory = sqlite3.Row
            version = view.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise QueueError(view.path, f"cannot read the queue: {exc}") from exc
        if version != SCHEMA_VERSION:
            view.db.close()
            raise QueueError(view.path, f"queue schema version {version}, this relay reads {SCHEMA_VERSION}")
        return view

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: no other writer can interleave)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise QueueError(self.path, f"cannot write the queue: {exc}") from exc
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- windows ----------------------------------------------------------------------
    def enqueue(self, windows: Iterable[tuple[int, int, str | None, int | None]]) -> list[int]:
        """Add (window_id, end_unix, source, end_line) as ``new``; ids already queued are left alone."""
        with self._write() as db:
            return self._insert_new(db, windows)

    def _insert_new(self, db: sqlite3.Connection,
                    windows: Iterable[tuple[int, int, str | None, int | None]]) -> list[int]:
        """Insert windows as ``new`` inside the caller's transaction; returns the ids that were not queued yet."""
        now = self.clock()
        added = []
        for wid, end_unix, source, line in windows:
            cur = db.execute(
                "INSERT OR IGNORE INTO windows (market, window_id, state, end_unix, source, end_line, seen_at, "
                "updated_at) VALUES (?, ?, 'new', ?, ?, ?, ?, ?)",
                (self.market, int(wid), int(end_unix), source, line, now, now))
            if cur.rowcount:
                added.append(int(wid))
        return added

    def transition(self, window_id: int, target: str, *, count_attempt: bool = False,
                   per_window: dict[int, dict[str, Any]] | None = None, **fields: Any) -> WindowRow:
        """Move a window (a batch's lead: its whole batch) to ``target``, refused unless the state machine allows
        it for every row, setting ``fields`` (and each row's ``per_window`` fields) in one transaction."""
        if target not in TRANSITIONS:
            raise RelayError(f"unknown relay state '{target}'")
        self._check_fields(fields, per_window)
        with self._write() as db:
            rows = self._group(db, window_id)
            self._shared_only(rows, fields)
            for row in rows:
                if target not in TRANSITIONS[row["state"]]:
                    raise IllegalTransition(int(row["window_id"]), row["state"], target)
            dissolve = {"batch_of": None} if target == "new" and len(rows) > 1 else {}
            for row in rows:
                wid = int(row["window_id"])
                self._set(db, wid, target, {**fields, **dissolve, **(per_window or {}).get(wid, {})},
                          count_attempt=count_attempt)
        return self.get(window_id)

    def update(self, window_id: int, *, count_attempt: bool = False,
               per_window: dict[int, dict[str, Any]] | None = None, **fields: Any) -> None:
        """Change fields of a window (a batch's lead: its whole batch) without changing its state (block seen,
        error noted, attempt counted)."""
        self._check_fields(fields, per_window)
        with self._write() as db:
            rows = self._group(db, window_id)
            self._shared_only(rows, fields)
            for row in rows:
                wid = int(row["window_id"])
                self._set(db, wid, None, {**fields, **(per_window or {}).get(wid, {})}, count_attempt=count_attempt)

    def start_batch(self, window_ids: list[int], **fields: Any) -> WindowRow:
        """Make consecutive ``new``/``held`` windows one batch (lead: the newest) and move it to ``proving``
        (attempt counted), in one transaction; returns the lead."""
        self._check_fields(fields, None)
        ids = sorted(int(w) for w in window_ids)
        if len(ids) < 2 or ids != list(range(ids[0], ids[0] + len(ids))):
            raise RelayError(f"a batch is two or more consecutive windows, not {ids}")
        lead = ids[-1]
        with self._write() as db:
            for wid in ids:
                row = db.execute("SELECT state, batch_of FROM windows WHERE market = ? AND window_id = ?",
                                 (self.market, wid)).fetchone()
                if row is None:
                    raise RelayError(f"window {wid} is not in the queue")
                if "proving" not in TRANSITIONS[row["state"]] or row["batch_of"] is not None:
                    raise IllegalTransition(wid, row["state"], "proving")
                db.execute("UPDATE windows SET batch_of = ? WHERE market = ? AND window_id = ?",
                           (lead, self.market, wid))
                self._set(db, wid, "proving", fields, count_attempt=True)
        return self.get(lead)

    def batch(self, window_id: int) -> list[WindowRow]:
        """The rows of the batch ``window_id`` is in, oldest first (just that window if it is in none)."""
        row = self.get(window_id)
        if row.batch_of is None:
            return [row]
        found = self.db.execute("SELECT * FROM windows WHERE market = ? AND batch_of = ? ORDER BY window_id",
                                (self.market, row.batch_of))
        return [_window(r) for r in found.fetchall()]

    @staticmethod
    def _check_fields(fields: dict[str, Any], per_window: dict[int, dict[str, Any]] | None) -> None:
        unknown = set(fields).union(*(set(f) for f in (per_window or {}).values())) - _WINDOW_FIELDS
        if unknown:
            raise RelayError(f"unknown window field(s): {', '.join(sorted(unknown))}")

    @staticmethod
    def _shared_only(rows: list[sqlite3.Row], fields: dict[str, Any]) -> None:
        own = set(fields) & _OWN_FIELDS
        if len(rows) > 1 and own:
            raise RelayError(f"{', '.join(sorted(own))} differ per window of a batch: pass them in per_window")

    def _group(self, db: sqlite3.Connection, window_id: int) -> list[sqlite3.Row]:
        """``window_id``'s row, or every row of its batch if it leads one (inside the caller's transaction)."""
        row = db.execute("SELECT window_id, state, batch_of FROM windows WHERE market = ? AND window_id = ?",
                         (self.market, window_id)).fetchone()
        if row is None:
            raise RelayError(f"window {window_id} is not in the queue")
        if row["batch_of"] != window_id:
            if row["batch_of"] is not None:
                raise RelayError(f"window {window_id} is in the batch led by window {row['batch_of']}: "
                                 "it changes with its lead")
            return [row]
        return db.execute("SELECT window_id, state, batch_of FROM windows WHERE market = ? AND batch_of = ? "
                          "ORDER BY window_id", (self.market, window_id)).fetchall()

    def _set(self, db: sqlite3.Connection, window_id: int, state: str | None, fields: dict[str, Any], *,
             count_attempt: bool) -> None:
        values = dict(fields, updated_at=self.clock())
        if state is not None:
            values["state"] = state
        sets = ", ".join(f"{k} = ?" for k in values)
        if count_attempt:
            sets += ", attempts = attempts + 1"
        # Safe to interpolate: column names come from _WINDOW_FIELDS (callers check); values are bound.
        db.execute(f"UPDATE windows SET {sets} WHERE market = ? AND window_id = ?",  # noqa: S608
                   (*values.values(), self.market, window_id))

    def record_tx(self, window_id: int, tx: TxRow, *, from_state: str) -> None:
        """Store a signed transaction and point its window (a lead: its whole batch) at it, in one transaction,
        before broadcasting.

        ``from_state`` is ``proved`` for a first send (the windows become
        ``submitted``) or ``submitted`` for a fee bump of the same nonce.
        """
        with self._write() as db:
            rows = self._group(db, window_id)
            for row in rows:
                if row["state"] != from_state or from_state not in {"proved", "submitted"}:
                    raise IllegalTransition(int(row["window_id"]), row["state"], "submitted")
            db.execute("INSERT INTO txs (tx_hash, market, window_id, nonce, raw_tx, max_fee, max_priority_fee, gas, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (tx.tx_hash, self.market, window_id, tx.nonce, tx.raw_tx, tx.max_fee, tx.max_priority_fee,
                        tx.gas, tx.created_at))
            fields: dict[str, Any] = {"tx_hash": tx.tx_hash, "nonce": tx.nonce, "block_number": None,
                                      "block_hash": None}
            if from_state == "proved":
                fields["submitted_at"] = tx.created_at
            for row in rows:
                self._set(db, int(row["window_id"]), "submitted", fields, count_attempt=False)

    def get(self, window_id: int) -> WindowRow:
        row = self.db.execute("SELECT * FROM windows WHERE market = ? AND window_id = ?",
                              (self.market, window_id)).fetchone()
        if row is None:
            raise RelayError(f"window {window_id} is not in the queue")
        return _window(row)

    def windows(self, *states: str) -> list[WindowRow]:
        """Windows in any of ``states`` (all when none given), oldest id first."""
        if states:
            marks = ",".join("?" * len(states))  # only placeholders are interpolated; the states are bound
            rows = self.db.execute(
                f"SELECT * FROM windows WHERE market = ? AND state IN ({marks}) ORDER BY window_id",  # noqa: S608
                (self.market, *states)).fetchall()
        else:
            rows = self.db.execute("SELECT * FROM windows WHERE market = ? ORDER BY window_id",
                                   (self.market,)).fetchall()
        return [_window(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Windows per state (every state present, zeros included)."""
        found = dict(self.db.execute("SELECT state, COUNT(*) FROM windows WHERE market = ? GROUP BY state",
                                     (self.market,)).fetchall())
        return {state: int(found.get(state, 0)) for state in STATES}

    def max_id(self) -> int | None:
        value = self.db.execute("SELECT MAX(window_id) FROM windows WHERE market = ?", (self.market,)).fetchone()[0]
        return None if value is None else int(value)

    def last_confirmed(self) -> WindowRow | None:
        row = self.db.execute("SELECT * FROM windows WHERE market = ? AND state = 'confirmed' "
                              "ORDER BY window_id DESC LIMIT 1", (self.market,)).fetchone()
        return _window(row) if row else None

    def txs(self, window_id: int) -> list[TxRow]:
        """Every transaction signed for a window, first one first."""
        rows = self.db.execute("SELECT * FROM txs WHERE market = ? AND window_id = ? ORDER BY created_at, rowid",
                               (self.market, window_id)).fetchall()
        return [_tx(r) for r in rows]

    def all_txs(self) -> list[TxRow]:
        return [_tx(r) for r in self.db.execute("SELECT * FROM txs WHERE market = ? ORDER BY created_at, rowid",
                                                (self.market,))]

    def submitted_nonces(self) -> list[int]:
        """Nonces of every market's ``submitted`` transactions (sent, not yet confirmed): the markets share one
        signer lane, so a new transaction's nonce is above all of them."""
        rows = self.db.execute("SELECT DISTINCT nonce FROM windows WHERE state = 'submitted' AND nonce IS NOT NULL "
                               "ORDER BY nonce").fetchall()
        return [int(r[0]) for r in rows]

    def markets(self) -> list[str]:
        """Every market with a window in this queue file."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT market FROM windows ORDER BY market")]

    # -- shadow scores ------------------------------------------------------------------
    def record_shadow(self, rows: Iterable[ShadowRow]) -> int:
        """Store shadow scores in one transaction; a (window, version) already recorded keeps its first row (a
        restart that scores a window again adds nothing). Returns the rows added."""
        with self._write() as db:
            added = 0
            for r in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO shadow_scores (market, window_id, version, score, production_version, "
                    "production_score, end_unix, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.market, int(r.window_id), r.version, float(r.score), r.production_version,
                     float(r.production_score), int(r.end_unix), float(r.scored_at)))
                added += cur.rowcount
        return added

    def shadowed(self, window_id: int) -> set[str]:
        """The versions that already have a shadow score of this window."""
        rows = self.db.execute("SELECT version FROM shadow_scores WHERE market = ? AND window_id = ?",
                               (self.market, window_id)).fetchall()
        return {str(r[0]) for r in rows}

    def shadow_scores(self, version: str | None = None) -> list[ShadowRow]:
        """This market's shadow scores (of ``version`` only, if given), by version then window id."""
        query = "SELECT * FROM shadow_scores WHERE market = ?"
        args: tuple[Any, ...] = (self.market,)
        if version is not None:
            query, args = query + " AND version = ?", (*args, version)
        rows = self.db.execute(query + " ORDER BY version, window_id", args).fetchall()
        return [ShadowRow(**_fields(r)) for r in rows]

    def shadow_markets(self) -> list[str]:
        """Every market with shadow scores in this queue file."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT market FROM shadow_scores ORDER BY market")]

    # -- quarantine and feed state ----------------------------------------------------
    def quarantine(self, source: str, line: int, column: str | None, problem: str, raw: str) -> bool:
        """Record a malformed feed row; False if it was already recorded (e.g. re-read after a restart)."""
        with self._write() as db:
            cur = db.execute("INSERT OR IGNORE INTO quarantine (market, source, line, column_, problem, raw, seen_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (self.market, source, line, column, problem, raw, self.clock()))
        return bool(cur.rowcount)

    def quarantined(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM quarantine WHERE market = ? ORDER BY seen_at, source, line",
                               (self.market,)).fetchall()
        return [{"source": r["source"], "line": r["line"], "column": r["column_"], "problem": r["problem"],
                 "raw": r["raw"]} for r in rows]

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE market = ? AND key = ?", (self.market, key)).fetchone()
        return None if row is None else json.loads(row["value"])

    def commit_feed(self, feed_state: Any, windows: Iterable[tuple[int, int, str | None, int | None]]) -> list[int]:
        """Save the feed's cursor and enqueue the windows it cut, in one transaction (no window lost on a crash)."""
        with self._write() as db:
            added = self._insert_new(db, windows)
            db.execute("INSERT INTO meta (market, key, value) VALUES (?, 'feed', ?) ON CONFLICT(market, key) DO "
                       "UPDATE SET value = excluded.value", (self.market, json.dumps(feed_state)))
        return added
