"""Following a growing ``market_depth.csv`` (or a directory of them): complete, validated rows only.

Only whole lines count: a last line without its newline is still being
written and is read on a later poll. Each new row is validated with the same
validator as ``sentinel data validate`` against the last good row (types,
positivity, blr consistency, increasing timestamps). A row that fails is
quarantined with file, line and column and logged once; later rows keep
flowing, checked against the last *good* row, so a bad row can never reach a
window. A gap longer than ``max_gap_factor`` cadences (missing rows, or a
quarantined one) starts a new segment: a window is cut only from rows of one
segment, and it is validated once more, as a whole and gap check included,
before it is proven.

A row dated more than ``future_skew`` seconds after the reference clock (read
once per poll) is quarantined too: otherwise one row stamped years ahead
would become the last good row and every later honest row would fail the
increasing-timestamps check. A held row that is beyond the limit (a state
saved by an older version, or a clock that went back) is dropped and reported
as quarantined, so it cannot stay the reference either. A row ahead of the
clock but within the skew is accepted; the honest rows it can push out are at
most ``future_skew / cadence``.

The feed's cursor (bytes read per file) and the last ``keep_rows`` good rows
are plain JSON that the daemon stores in the queue in the same transaction as
the windows they produced, so a restart resumes exactly where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.config import DataConfig, RelayConfig
from sentinel.data import schema, windows
from sentinel.errors import DataValidationError, FeedError

log = logging.getLogger("sentinel.feed")


@dataclass(frozen=True)
class FeedRow:
    """A good row: where it came from, its required cells, its time and its contiguous segment."""

    source: str
    line: int
    cells: tuple[str, ...]  #: schema.REQUIRED_COLUMNS order
    unix: float
    segment: int


@dataclass(frozen=True)
class BadRow:
    """A quarantined row."""

    source: str
    line: int
    column: str | None
    problem: str
    raw: str

    def describe(self) -> str:
        where = f"{self.source}, line {self.line}" + (f", column '{self.column}'" if self.column else "")
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class FeedWindow:
    """A complete window: its id, end time and end row."""

    window_id: int
    end_unix: int
    source: str
    end_line: int


@dataclass
class Poll:
    """What one poll found."""

    rows: list[FeedRow] = dataclasses.field(default_factory=list)
    bad: list[BadRow] = dataclasses.field(default_factory=list)
    windows: list[FeedWindow] = dataclasses.field(default_factory=list)
    gaps: int = 0


def utc_text(unix: float) -> str:
    """Unix seconds as an ISO-8601 UTC time (for messages)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reference_time(wall: float, block_time: float | None) -> float:
    """The clock feed rows are checked against (future skew): the wall clock, or the newest block time seen if that
    is later (a dev chain moved ahead); never the chain's alone, as an idle node's latest block can be hours old."""
    return max(float(wall), float(block_time or 0.0))


class Feed:
    """Tails one CSV file or every ``*.csv`` in a directory (in name order, as rotated files).

    ``clock`` gives the reference time in Unix seconds (read once per poll);
    a row dated more than ``future_skew`` seconds after it is quarantined.
    """

    def __init__(self, path: Path, data: DataConfig, cadence: float, window: int, keep_rows: int = 400,
                 state: dict[str, Any] | None = None, *, clock: Callable[[], float] = time.time,
                 future_skew: float = RelayConfig.future_skew_seconds) -> None:
        self.path = Path(path)
        self.data = data
        self.cadence = float(cadence)
        self.window = int(window)
        self.keep = max(int(keep_rows), self.window)
        self.clock = clock
        self.future_skew = float(future_skew)
        # Row-by-row checks without the gap rule: a gap is not a bad row, it starts a new segment.
        self._row_config = dataclasses.replace(data, cadence_seconds=self.cadence, max_gap_factor=1e12)
        self._window_config = dataclasses.replace(data, cadence_seconds=self.cadence)
        self.files: dict[str, dict[str, Any]] = {}
        self.rows: deque[FeedRow] = deque(maxlen=self.keep)
        self.segment = 0
        if state:
            self.files = {k: dict(v) for k, v in state.get("files", {}).items()}
            self.segment = int(state.get("segment", 0))
            for r in state.get("rows", []):
                self.rows.append(FeedRow(r[0], int(r[1]), tuple(r[2]), float(r[3]), int(r[4])))

    def state(self) -> dict[str, Any]:
        """JSON-able cursor and recent rows (what a restart needs)."""
        return {"files": self.files, "segment": self.segment,
                "rows": [[r.source, r.line, list(r.cells), r.unix, r.segment] for r in self.rows]}

    def sources(self) -> list[Path]:
        """The files followed now."""
        if self.path.is_dir():
            return sorted(p for p in self.path.glob("*.csv") if p.is_file())
        if self.path.exists():
            return [self.path]
        if self.path.parent.is_dir():
            return []  # not created yet: a feed may start later
        raise FeedError(self.path, "neither a file nor a directory, and its directory does not exist")

    def poll(self) -> Poll:
        """Read every complete new line of every source; validate, quarantine, cut windows."""
        # Read before anything changes: a clock that raises (an RPC behind it) leaves the feed as it was.
        now = float(self.clock())
        limit = now + self.future_skew
        result = Poll()
        self._drop_future(limit, now, result)
        for source in self.sources():
            self._poll_file(source, result, limit, now)
        return result

    def _future_problem(self, unix: float, now: float) -> str:
        return (f"dated {utc_text(unix)}, {unix - now:.0f} s after the reference clock ({utc_text(now)}): more than "
                f"the {self.future_skew:g} s future skew (a clock or time-zone error?); later rows are not checked "
                f"against it")

    def _drop_future(self, limit: float, now: float, result: Poll) -> None:
        """Held rows dated beyond ``limit`` (restored from an older state) stop being the reference."""
        dropped = False
        while self.rows and self.rows[-1].unix > limit:
            row = self.rows.pop()
            dropped = True
            log.warning("event=feed_reference_dropped source=%s line=%d: a held row is dated beyond the future skew",
                        row.source, row.line)
            result.bad.append(BadRow(row.source, row.line, schema.TIMESTAMP, self._future_problem(row.unix, now),
                                     ",".join(row.cells)))
        if dropped and self.rows:  # the next row continues the last held row's segment if it follows it in time
            self.segment = self.rows[-1].segment

    # -- reading ----------------------------------------------------------------------
    def _poll_file(self, source: Path, result: Poll, limit: float, now: float) -> None:
        key = str(source)
        cursor = self.files.setdefault(key, {"offset": 0, "line": 0, "header": None})
        try:
            size = source.stat().st_size
            if size < cursor["offset"]:
                log.warning("event=feed_truncated source=%s offset=%d size=%d: reading it again from the start",
                            key, cursor["offset"], size)
                cursor.update(offset=0, line=0, header=None)
            with source.open("rb") as fh:
                fh.seek(cursor["offset"])
                chunk = fh.read()
        except OSError as exc:
            raise FeedError(source, f"cannot read: {exc.strerror or exc}") from exc
        end = chunk.rfind(b"\n")
        if end < 0:
            return  # no complete line yet
        complete = chunk[: end + 1]
        cursor["offset"] += len(complete)
        pending: list[tuple[int, str, list[str]]] = []
        for raw_line in complete.split(b"\n")[:-1]:
            cursor["line"] += 1
            line_no = cursor["line"]
            text = raw_line.decode("utf-8", errors="replace").rstrip("\r")
            if line_no == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                cells = next(csv.reader(io.StringIO(text), strict=True))
            except (csv.Error, StopIteration) as exc:
                self._bad(result, BadRow(key, line_no, None, f"not valid CSV: {exc}", text))
                continue
            if cursor["header"] is None:
                header = [c.strip() for c in cells]
                missing = [c for c in schema.REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise FeedError(source, f"line {line_no}: header lacks column(s) {', '.join(missing)}")
                cursor["header"] = header
                continue
            header = cursor["header"]
            if len(cells) != len(header):
                self._bad(result, BadRow(key, line_no, None,
                                         f"has {len(cells)} fields but the header has {len(header)}", text))
                continue
            pick = [header.index(c) for c in schema.REQUIRED_COLUMNS]
            pending.append((line_no, text, [cells[i] for i in pick]))
        self._accept(key, pending, result, limit, now)
        result.bad.sort(key=lambda b: (b.source, b.line))  # report in file order, whichever check found them

    def _bad(self, result: Poll, bad: BadRow) -> None:
        result.bad.append(bad)

    def _accept(self, key: str, pending: list[tuple[int, str, list[str]]], result: Poll, limit: float,
                now: float) -> None:
        """Validate ``pending`` rows against the last good one; keep the good, quarantine the bad (a row dated
        after ``limit`` included), so that only a good row ever becomes the reference for the next."""
        from sentinel.data.validate import epoch_seconds, parse_market_table

        start = 0
        while start < len(pending):
            end = len(pending)
            while True:
                prev = [list(self.rows[-1].cells)] if self.rows else []
                batch = pending[start:end]
                try:
                    market = parse_market_table(schema.REQUIRED_COLUMNS, prev + [c for _, _, c in batch],
                                                self._row_config, Path(key))
                except DataValidationError as exc:
                    index = (exc.row or 1) - 1 - len(prev)
                    if index <= 0:  # the first pending row is bad (or the batch as a whole is)
                        line_no, text, _ = pending[start]
                        self._bad(result, BadRow(key, line_no, exc.column, exc.problem, text))
                        start += 1
                        break
                    end = start + index  # rows before the first bad one may hold their own problems: recheck
                    continue
                times = [float(t) for t in epoch_seconds(market.frame[schema.TIMESTAMP])[len(prev):]]
                ahead = next((i for i, unix in enumerate(times) if unix > limit), None)
                for (line_no, _, cells), unix in zip(batch[:ahead], times[:ahead], strict=True):
                    self._append(FeedRow(key, line_no, tuple(cells), unix, self.segment), result)
                if ahead is None:
                    start = end
                    break
                # The rows after it were only checked against it: they are checked again, against the last good row.
                line_no, text, _ = batch[ahead]
                self._bad(result, BadRow(key, line_no, schema.TIMESTAMP, self._future_problem(times[ahead], now),
                                         text))
                start += ahead + 1
                break

    def _append(self, row: FeedRow, result: Poll) -> None:
        if self.rows and row.unix - self.rows[-1].unix > self.data.max_gap_factor * self.cadence:
            self.segment += 1
            result.gaps += 1
            log.warning("event=feed_gap source=%s line=%d gap_seconds=%g: windows restart after %d good rows",
                        row.source, row.line, row.unix - self.rows[-1].unix, self.window)
        row = dataclasses.replace(row, segment=self.segment)
        self.rows.append(row)
        result.rows.append(row)
        n = len(self.rows)
        if n >= self.window and self.rows[n - self.window].segment == row.segment:
            end_unix = math.floor(row.unix)
            result.windows.append(FeedWindow(windows.window_id(end_unix, self.cadence), end_unix, row.source, row.line))

    # -- windows ----------------------------------------------------------------------
    def window_rows(self, window_id: int, before: int = 0) -> list[FeedRow] | None:
        """The held rows of the window with this id (the newest row of that id ends it) and the ``before`` rows
        preceding them (the windows before it, for a batch proof), or None if they are no longer held or span a
        gap."""
        rows = list(self.rows)
        for i in range(len(rows) - 1, self.window - 2, -1):
            if windows.window_id(math.floor(rows[i].unix), self.cadence) == window_id:
                first = i - self.window + 1 - before
                if first < 0:
                    return None
                cut = rows[first: i + 1]
                return cut if cut[0].segment == cut[-1].segment else None
        return None

    def market_for(self, window_id: int, before: int = 0) -> Any:
        """The window's rows (and ``before`` more, see :meth:`window_rows`) as validated MarketData (gap check
        included), or None if they are no longer held."""
        from sentinel.data.validate import parse_market_table

        cut = self.window_rows(window_id, before)
        if cut is None:
            return None
        return parse_market_table(schema.REQUIRED_COLUMNS, [list(r.cells) for r in cut], self._window_config,
                                  Path(cut[-1].source))

    def newest_unix(self) -> float | None:
        return self.rows[-1].unix if self.rows else None
