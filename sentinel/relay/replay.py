"""Replaying a recorded feed into a file the relay follows, row by row (demo, tests, bench).

The demo compresses time: a recorded minute-cadence feed is appended at a few
rows per second. The breaker judges freshness by *block* time, so with
``chain_rpc`` the local Anvil's clock is moved to each row's time before the
row is appended (``evm_setNextBlockTimestamp`` + ``evm_mine``). A live feed
needs no warping: its rows and the chain's blocks share the wall clock.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sentinel.errors import DataFileError


@dataclass
class ReplayResult:
    """What was appended, and when (wall clock), for latency measurements."""

    rows: int = 0
    first_line: int = 0
    last_line: int = 0
    warped_to: int | None = None
    appended_at: dict[int, float] = field(default_factory=dict)  #: floor(row unix time) -> wall time written

    def to_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "first_line": self.first_line, "last_line": self.last_line,
                "warped_to": self.warped_to}


def row_unix(line: str) -> float:
    """Unix seconds of a canonical row's first cell (ISO-8601 timestamp)."""
    text = line.split(",", 1)[0].strip().replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def _append(dst: Path, text: str) -> None:
    with dst.open("a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _read(src: Path) -> tuple[str, list[str]]:
    """Header and data rows of a feed file."""
    try:
        lines = [line for line in src.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except OSError as exc:
        raise DataFileError(src, f"cannot read: {exc.strerror or exc}") from exc
    if len(lines) < 2:
        raise DataFileError(src, "has no data rows")
    return lines[0], lines[1:]


def replay(src: Path, dst: Path, *, rows_per_second: float, first: int = 1, last: int | None = None,
           prefill: int = 0, chain_rpc: str | None = None, stop: threading.Event | None = None,
           on_row: Callable[[int, float], None] | None = None,
           copies: Sequence[tuple[Path, Path | None]] = ()) -> ReplayResult:
    """Append data rows ``first..last`` (1-based) of ``src`` to ``dst`` at ``rows_per_second``.

    ``prefill`` rows before ``first`` are written at once (so a window is
    complete from the start). ``dst`` gets ``src``'s header if it is new or
    empty. With ``chain_rpc`` the chain's clock follows each row's time.

    ``copies`` are other feeds fed in step, each ``(path, source)``: the same
    row of ``source`` (``None``: of ``src``) is appended to ``path`` just
    before ``dst`` gets it, as independent attesters each follow their own
    copy of the market feed (a different ``source`` plays a copy that
    disagrees, e.g. one corrupted row).
    """
    from sentinel.chain import anvil

    if rows_per_second <= 0:
        raise DataFileError(Path(src), "--rows-per-second must be > 0")
    header, rows = _read(Path(src))
    feeds: list[tuple[Path, str, list[str]]] = []
    for path, source in copies:
        if source is None:
            feeds.append((Path(path), header, rows))
            continue
        other_header, other_rows = _read(Path(source))
        if len(other_rows) != len(rows):
            raise DataFileError(Path(source), f"has {len(other_rows)} data rows, {src} has {len(rows)}: a copy's "
                                              "source must match the replayed file row for row")
        feeds.append((Path(path), other_header, other_rows))
    last = len(rows) if last is None else min(last, len(rows))
    if not 1 <= first <= last:
        raise DataFileError(Path(src), f"rows {first}..{last}: the file has rows 1..{len(rows)}")
    feeds.append((Path(dst), header, rows))  # last: every copy holds a row before the relay's feed does
    for path, head, _ in feeds:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            _append(path, head + "\n")
    result = ReplayResult(first_line=first + 1, last_line=last + 1)

    def warp(unix: float) -> None:
        if chain_rpc is None:
            return
        target = math.floor(unix) + 1
        if target > anvil.chain_time(chain_rpc):
            result.warped_to = anvil.warp(chain_rpc, target)

    start_pre = max(1, first - prefill)
    if start_pre < first:
        warp(row_unix(rows[first - 2]))
        for path, _, lines in feeds:
            _append(path, "\n".join(lines[start_pre - 1: first - 1]) + "\n")
    start = time.monotonic()
    for k, index in enumerate(range(first, last + 1)):
        due = start + k / rows_per_second
        while (delay := due - time.monotonic()) > 0:
            if stop is not None and stop.wait(delay):
                return result
            if stop is None:
                time.sleep(delay)
        line = rows[index - 1]
        unix = row_unix(line)
        warp(unix)
        for path, _, lines in feeds:
            _append(path, lines[index - 1] + "\n")
        result.rows += 1
        result.appended_at[math.floor(unix)] = time.time()
        if on_row is not None:
            on_row(index, unix)
    return result
