"""Reading and writing market-depth CSV files.

Reading is strict (see :mod:`sentinel.data.validate`); writing is canonical
(fixed column order, ``YYYY-MM-DDTHH:MM:SS.mmmZ`` timestamps, shortest
round-trip floats) and atomic, so the same table always gives the same bytes
and a failed write leaves nothing behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sentinel.artifacts import atomic_write_bytes
from sentinel.config import DataConfig
from sentinel.data import schema
from sentinel.data.validate import MarketData, parse_market_table
from sentinel.errors import DataFileError


def read_market_csv(path: Path, config: DataConfig | None = None) -> MarketData:
    """Read and validate a market-depth CSV; raises a ``DataError`` naming the problem."""
    path = Path(path)
    config = config or DataConfig()
    if not path.exists():
        raise DataFileError(path, "file does not exist")
    if path.is_dir():
        raise DataFileError(path, "is a directory, expected a CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise DataFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        records = [r for r in reader if r]  # blank lines are not rows
    except csv.Error as exc:
        raise DataFileError(path, f"not valid CSV: {exc}") from exc
    if not records:
        raise DataFileError(path, "is empty (expected a header line and data rows)")
    return parse_market_table(records[0], records[1:], config, path)


def _fmt_float(value: float) -> str:
    return repr(float(value))


def market_csv_bytes(data: MarketData | pd.DataFrame) -> bytes:
    """Canonical CSV bytes of a validated table (same table, same bytes)."""
    frame = data.frame if isinstance(data, MarketData) else data
    columns = list(schema.REQUIRED_COLUMNS)
    if schema.ALERT_TRIGGERED in frame.columns:
        columns.append(schema.ALERT_TRIGGERED)
    if all(c in frame.columns for c in schema.TRUTH_COLUMNS):
        columns.extend(schema.TRUTH_COLUMNS)

    ts = pd.DatetimeIndex(frame[schema.TIMESTAMP])
    ts_text = ts.strftime("%Y-%m-%dT%H:%M:%S.") + (ts.microsecond // 1000).map("{:03d}".format) + "Z"
    cells: dict[str, list[str]] = {schema.TIMESTAMP: list(ts_text)}
    for column in schema.FEATURES:
        cells[column] = [_fmt_float(v) for v in frame[column].to_numpy(dtype=np.float64)]
    if schema.ALERT_TRIGGERED in columns:
        cells[schema.ALERT_TRIGGERED] = ["true" if v else "false" for v in frame[schema.ALERT_TRIGGERED]]
    if schema.EPISODE in columns:
        cells[schema.EPISODE] = [str(int(v)) for v in frame[schema.EPISODE]]
        cells[schema.FAMILY] = [str(v) for v in frame[schema.FAMILY]]
        cells[schema.PHASE] = [str(v) for v in frame[schema.PHASE]]
        cells[schema.CRASH_ONSET] = [str(int(v)) for v in frame[schema.CRASH_ONSET]]

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*(cells[c] for c in columns), strict=True))
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True)
class WriteResult:
    """What a canonical write produced."""

    path: Path
    rows: int
    sha256: str


def write_market_csv(data: MarketData | pd.DataFrame, path: Path) -> WriteResult:
    """Write the canonical CSV atomically; returns its row count and sha256."""
    payload = market_csv_bytes(data)
    atomic_write_bytes(Path(path), payload)
    frame = data.frame if isinstance(data, MarketData) else data
    return WriteResult(Path(path), len(frame), hashlib.sha256(payload).hexdigest())


@dataclass(frozen=True)
class IngestResult:
    """Outcome of :func:`ingest`."""

    source: Path
    written: WriteResult
    cadence_seconds: float
    first_timestamp: str
    last_timestamp: str
    dropped_columns: tuple[str, ...]


def ingest(source: Path, out: Path, config: DataConfig | None = None) -> IngestResult:
    """Validate ``source`` and write it to ``out`` in canonical form (nothing written on error)."""
    data = read_market_csv(source, config)
    written = write_market_csv(data, out)
    ts = data.frame[schema.TIMESTAMP]
    return IngestResult(
        source=Path(source),
        written=written,
        cadence_seconds=data.cadence_seconds,
        first_timestamp=ts.iloc[0].isoformat(),
        last_timestamp=ts.iloc[-1].isoformat(),
        dropped_columns=data.dropped_columns,
    )
