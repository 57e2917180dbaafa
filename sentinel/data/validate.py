"""Strict validation of market-depth tables (pure: no file I/O).

:func:`parse_market_table` turns a header and rows of strings into a typed
:class:`MarketData` or raises one :class:`DataValidationError` naming the
earliest offending row and its column. Every check runs over the whole file,
so the message can also say how many other problems there are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sentinel.config import DataConfig
from sentinel.data import schema
from sentinel.errors import DataValidationError

_NAN_LITERALS = frozenset({"", "nan", "na", "n/a", "null", "none", "-nan", "+nan"})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def epoch_seconds(timestamps: pd.Series) -> np.ndarray:
    """UTC timestamps as float Unix seconds, whatever the datetime resolution."""
    return ((timestamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class MarketData:
    """A validated market-depth table.

    ``frame`` has a UTC ``timestamp`` column, float64 feature columns, and
    whichever optional and ground-truth columns the source carried; its index
    is 0..n-1 (data row ``i + 1`` of the file).
    """

    frame: pd.DataFrame
    cadence_seconds: float
    source: Path | None = None
    #: Columns of the source that are not part of the schema (not carried on).
    dropped_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_truth(self) -> bool:
        """True when the table carries the generator's ground-truth columns."""
        return all(c in self.frame.columns for c in schema.TRUTH_COLUMNS)

    def features(self) -> np.ndarray:
        """Model features, shape (n, 4), in :data:`schema.FEATURES` order."""
        return self.frame.loc[:, list(schema.FEATURES)].to_numpy(dtype=np.float64)

    def timestamps_unix(self) -> np.ndarray:
        """Row timestamps as integer Unix seconds (floored), shape (n,)."""
        seconds: np.ndarray = np.floor(epoch_seconds(self.frame[schema.TIMESTAMP]))
        return seconds.astype(np.int64)


@dataclass
class _Problem:
    row: int  # 0-based index into the data rows
    column: str | None
    message: str


class _Findings:
    """Collects problems; the earliest (row, check order) is reported."""

    def __init__(self) -> None:
        self.problems: list[_Problem] = []
        self.count = 0

    def add(self, mask: np.ndarray, column: str | None, describe: Callable[[int], str]) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            self.count += int(idx.size)
            first = int(idx[0])
            self.problems.append(_Problem(first, column, describe(first)))

    def raise_first(self, path: Path | None) -> None:
        if not self.problems:
            return
        first = min(self.problems, key=lambda p: p.row)  # stable: check order breaks ties
        raise DataValidationError(
            path, first.message, row=first.row + 1, column=first.column, more=self.count - 1
        )


def _numeric(values: pd.Series, column: str, findings: _Findings) -> np.ndarray:
    text = values.str.strip()
    parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    lowered = text.str.lower()
    is_nan_literal = lowered.isin(_NAN_LITERALS).to_numpy()
    unparsable = np.isnan(parsed) & ~is_nan_literal
    findings.add(
        is_nan_literal,
        column,
        lambda i: "missing value" if text.iat[i] == "" else f"NaN is not allowed (got '{text.iat[i]}')",
    )
    findings.add(unparsable, column, lambda i: f"not a number: '{text.iat[i]}'")
    findings.add(np.isinf(parsed), column, lambda i: f"infinite value '{text.iat[i]}' is not allowed")
    return parsed


def _positive(values: np.ndarray, column: str, findings: _Findings) -> None:
    findings.add(np.isfinite(values) & (values <= 0), column, lambda i: f"{column} must be > 0, got {values[i]:g}")


def parse_market_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    config: DataConfig,
    path: Path | None = None,
) -> MarketData:
    """Validate string ``rows`` under ``header`` and return typed :class:`MarketData`.

    Raises :class:`DataValidationError` for: a missing or duplicated column, no
    data rows, a row with the wrong number of fields, an empty/NaN/inf/non-numeric
    value, a non-positive blr, volume or price, an unparsable timestamp, a
    duplicate or decreasing timestamp, a gap longer than ``max_gap_factor``
    cadences, or a ``blr`` that disagrees with ``buy_volume / sell_volume``.
    """
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataValidationError(path, "column appears twice in the header", column=name)
        seen.add(name)
    for name in schema.REQUIRED_COLUMNS:
        if name not in seen:
            raise DataValidationError(
                path,
                f"required column is missing (header has: {', '.join(header) or 'nothing'})",
                column=name,
            )
    if not rows:
        raise DataValidationError(path, "no data rows after the header")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise DataValidationError(
                path, f"has {len(row)} fields but the header has {len(header)}", row=i + 1
            )

    table = pd.DataFrame(list(rows), columns=header, dtype=object).astype(str)
    findings = _Findings()
    out: dict[str, object] = {}

    # Timestamps: ISO-8601; offsets are converted to UTC and naive ones are taken as UTC.
    ts_text = table[schema.TIMESTAMP].str.strip()
    ts = pd.to_datetime(ts_text, format="ISO8601", utc=True, errors="coerce")
    bad_ts = ts.isna().to_numpy()
    findings.add(bad_ts, schema.TIMESTAMP, lambda i: f"not an ISO-8601 timestamp: '{ts_text.iat[i]}'")
    out[schema.TIMESTAMP] = ts

    numeric: dict[str, np.ndarray] = {}
    for column in schema.FEATURES:
        values = _numeric(table[column], column, findings)
        _positive(values, column, findings)
        out[column] = numeric[column] = values

    if schema.ALERT_TRIGGERED in table.columns:
        flag = table[schema.ALERT_TRIGGERED].str.strip().str.lower()
        bad_flag = ~flag.isin(_TRUE | _FALSE).to_numpy()
        findings.add(
            bad_flag,
            schema.ALERT_TRIGGERED,
            lambda i: f"expected true/false, got '{table[schema.ALERT_TRIGGERED].iat[i]}'",
        )
        out[schema.ALERT_TRIGGERED] = flag.isin(_TRUE).to_numpy()

    truth_present = [c for c in schema.TRUTH_COLUMNS if c in table.columns]
    if truth_present and len(truth_present) != len(schema.TRUTH_COLUMNS):
        missing = next(c for c in schema.TRUTH_COLUMNS if c not in table.columns)
        raise DataValidationError(
            path, "ground-truth columns must come together (episode, family, phase, crash_onset)",
            column=missing,
        )
    if truth_present:
        episode = pd.to_numeric(table[schema.EPISODE].str.strip(), errors="coerce").to_numpy()
        findings.add(
            ~np.isfinite(episode) | (episode != np.round(episode)) | (episode < 0),
            schema.EPISODE,
            lambda i: f"expected a non-negative integer, got '{table[schema.EPISODE].iat[i]}'",
        )
        family = table[schema.FAMILY].str.strip()
        findings.add(
            ~family.isin(schema.FAMILIES).to_numpy(),
            schema.FAMILY,
            lambda i: f"unknown family '{family.iat[i]}' (known: {', '.join(schema.FAMILIES)})",
        )
        phase = table[schema.PHASE].str.strip()
        findings.add(
            ~phase.isin(schema.PHASES).to_numpy(),
            schema.PHASE,
            lambda i: f"unknown phase '{phase.iat[i]}' (known: {', '.join(schema.PHASES)})",
        )
        onset = table[schema.CRASH_ONSET].str.strip()
        findings.add(
            ~onset.isin(["0", "1"]).to_numpy(),
            schema.CRASH_ONSET,
            lambda i: f"expected 0 or 1, got '{onset.iat[i]}'",
        )
        out[schema.EPISODE] = np.nan_to_num(episode).astype(np.int64)
        out[schema.FAMILY] = family.to_numpy()
        out[schema.PHASE] = phase.to_numpy()
        out[schema.CRASH_ONSET] = (onset == "1").to_numpy().astype(np.int8)

    # Cross-row checks only make sense on rows whose own cells parsed.
    cadence = config.cadence_seconds
    if not bad_ts.any():
        seconds = epoch_seconds(ts)
        step = np.diff(seconds)
        dup = np.concatenate([[False], step == 0])
        back = np.concatenate([[False], step < 0])
        findings.add(
            dup, schema.TIMESTAMP,
            lambda i: f"duplicate timestamp {ts_text.iat[i]} (same as row {i})",
        )
        findings.add(
            back, schema.TIMESTAMP,
            lambda i: f"timestamp {ts_text.iat[i]} is earlier than row {i}'s {ts_text.iat[i - 1]}",
        )
        positive = step[step > 0]
        if cadence <= 0:
            cadence = float(np.median(positive)) if positive.size else 0.0
        if cadence > 0:
            limit = config.max_gap_factor * cadence
            gap = np.concatenate([[False], step > limit])
            findings.add(
                gap, schema.TIMESTAMP,
                lambda i: (
                    f"gap of {step[i - 1]:g} s after row {i} exceeds "
                    f"{config.max_gap_factor:g} x the {cadence:g} s cadence"
                ),
            )

    blr = numeric[schema.BLR]
    buy = numeric[schema.BUY_VOLUME]
    sell = numeric[schema.SELL_VOLUME]
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = buy / sell
        off = np.abs(blr - implied) > config.blr_abs_tolerance + config.blr_rel_tolerance * np.abs(implied)
    usable = np.isfinite(blr) & np.isfinite(implied) & (sell > 0) & (buy > 0)
    findings.add(
        off & usable,
        schema.BLR,
        lambda i: (
            f"blr {blr[i]:g} disagrees with buy_volume / sell_volume = "
            f"{buy[i]:g} / {sell[i]:g} = {implied[i]:.6g}"
        ),
    )

    findings.raise_first(path)

    frame = pd.DataFrame(out)
    dropped = tuple(c for c in header if c not in frame.columns)
    return MarketData(frame=frame, cadence_seconds=float(cadence), source=path, dropped_columns=dropped)
