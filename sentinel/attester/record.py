"""The attester's durable signing record: SQLite (WAL, synchronous=FULL), one row per window it signed.

The row of a window (chain id, breaker, window id) is committed *before* its
signature leaves the process, in the same write transaction that checked no
row was there, so no crash, restart or second process on the same file can
make this party sign two different input hashes (or window ends) for one
window: asked again with the same ones it answers the stored signature,
asked with others it refuses (:class:`~sentinel.errors.AlreadySigned`).
Signing twice for one window would let a relay (or anyone holding two
signatures) choose which rows count.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.errors import AlreadySigned, SigningRecordError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signed (
    chain_id    INTEGER NOT NULL,
    breaker     TEXT NOT NULL,
    window_id   INTEGER NOT NULL,
    window_end  INTEGER NOT NULL,
    input_hash  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    signer      TEXT NOT NULL,
    signed_at   REAL NOT NULL,
    PRIMARY KEY (chain_id, breaker, window_id)
);
"""


@dataclass(frozen=True)
class SignedWindow:
    """One signature this party gave (``breaker`` lower-case)."""

    chain_id: int
    breaker: str
    window_id: int
    window_end: int
    input_hash: int
    signature: bytes
    signer: str
    signed_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SignedWindow:
        return cls(int(row["chain_id"]), str(row["breaker"]), int(row["window_id"]), int(row["window_end"]),
                   int(row["input_hash"], 16), bytes.fromhex(row["signature"].removeprefix("0x")), str(row["signer"]),
                   float(row["signed_at"]))


class SigningRecord:
    """Every attestation signed, keyed by (chain id, breaker, window id)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()  # one connection, shared by the signing path and /healthz
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise SigningRecordError(self.path, f"signing record schema version {version}, this attester reads "
                                                    f"{SCHEMA_VERSION}")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"signed"}:
                raise SigningRecordError(self.path, "not an attester signing record (tables: "
                                                    f"{', '.join(sorted(tables))})", hint="pass another --record")
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise SigningRecordError(self.path, f"cannot open the signing record: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def get(self, chain_id: int, breaker: str, window_id: int) -> SignedWindow | None:
        """The signature given for this window, if any."""
        with self._lock:
            row = self.db.execute("SELECT * FROM signed WHERE chain_id = ? AND breaker = ? AND window_id = ?",
                                  (chain_id, breaker.lower(), window_id)).fetchone()
        return SignedWindow.from_row(row) if row is not None else None

    def sign_once(self, chain_id: int, breaker: str, window_id: int, window_end: int, input_hash: int,
                  sign: Callable[[], tuple[str, bytes]]) -> tuple[SignedWindow, bool]:
        """The window's signature: the stored one if (end, hash) match it, else a new one from ``sign()``
        (signer, signature), committed before it is returned; ``(row, True)`` when new.

        Raises :class:`AlreadySigned` if another end or hash was signed for this window.
        """
        breaker = breaker.lower()
        with self._lock:
            return self._sign_once(chain_id, breaker, window_id, window_end, input_hash, sign)

    def _sign_once(self, chain_id: int, breaker: str, window_id: int, window_end: int, input_hash: int,
                   sign: Callable[[], tuple[str, bytes]]) -> tuple[SignedWindow, bool]:
        try:
            self.db.execute("BEGIN IMMEDIATE")  # the write lock: no other writer between the check and the insert
            try:
                existing = self.get(chain_id, breaker, window_id)
                if existing is not None:
                    self.db.execute("ROLLBACK")
                    if (existing.window_end, existing.input_hash) != (window_end, input_hash):
                        raise AlreadySigned(window_id, breaker, existing.window_end, existing.input_hash)
                    return existing, False
                signer, signature = sign()
                row = SignedWindow(chain_id, breaker, window_id, window_end, input_hash, signature, signer,
                                   float(self.clock()))
                self.db.execute("INSERT INTO signed VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _values(row))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise SigningRecordError(self.path, f"cannot write the signing record: {exc}") from exc
        return row, True

    def last(self) -> SignedWindow | None:
        """The most recently signed window."""
        with self._lock:
            row = self.db.execute("SELECT * FROM signed ORDER BY signed_at DESC, rowid DESC LIMIT 1").fetchone()
        return SignedWindow.from_row(row) if row is not None else None

    def signers(self) -> list[str]:
        """Every address that signed into this record (one, for a record kept by one key)."""
        with self._lock:
            return [str(r[0]) for r in self.db.execute("SELECT DISTINCT signer FROM signed ORDER BY signer")]

    def count(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM signed").fetchone()[0])


def _values(row: SignedWindow) -> tuple[Any, ...]:
    return (row.chain_id, row.breaker, row.window_id, row.window_end, f"0x{row.input_hash:064x}",
            "0x" + row.signature.hex(), row.signer, row.signed_at)
