"""Cutting market-depth tables into model windows.

A window is ``size`` consecutive rows of the four features, shape
``(size, 4)``, identified by its *end row* (0-based index into the table) and
its end timestamp. Windows never straddle two synthetic episodes when the
table carries ground truth: the rows around an episode boundary belong to two
different scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sentinel.data import schema
from sentinel.data.validate import MarketData
from sentinel.errors import DataError

#: The breaker's FUTURE_SKEW: a window may end at most this many seconds after the block that takes it
#: (SentinelBreaker.sol). The relay, the attesters and the auditor apply the same bound.
FUTURE_SKEW_SECONDS = 300


def window_id(end_unix: int, cadence_seconds: float) -> int:
    """The id of the window ending at Unix second ``end_unix``: the one rule everything uses.

    ``floor(end_unix / cadence_seconds)``: the breaker computes the same
    (``windowEnd / cadence`` in integer arithmetic) and refuses any other id,
    so consecutive windows of a feed have consecutive ids, anyone can derive
    an id from raw rows, and a gap in reported ids is a window nobody
    reported. Rounding down, not to nearest: Python's ``round`` rounds halves
    to even, which gave two windows of a feed stamped at hh:mm:30 one id.
    The prover stamps it on a proof bundle, the relay on the windows it
    queues, an attester checks it against its own rows and the auditor
    against every Report event: all of them call this function.
    """
    return math.floor(end_unix / cadence_seconds)


@dataclass(frozen=True)
class Windows:
    """A batch of windows cut from one table.

    ``x`` has shape (n, size, 4) float32 in :data:`schema.FEATURES` order;
    ``end_rows`` (n,) are 0-based table rows of each window's last row;
    ``end_times`` (n,) are those rows' Unix seconds.
    """

    x: np.ndarray
    end_rows: np.ndarray
    end_times: np.ndarray

    def __len__(self) -> int:
        return int(self.end_rows.shape[0])


def valid_end_rows(data: MarketData, size: int) -> np.ndarray:
    """0-based end rows of every complete window (within one episode if labelled)."""
    if size < 1:
        raise DataError(f"window size must be >= 1, got {size}")
    n = len(data)
    ends = np.arange(size - 1, n)
    if data.has_truth and ends.size:
        episode = data.frame[schema.EPISODE].to_numpy()
        ends = ends[episode[ends] == episode[ends - (size - 1)]]
    return ends


def cut_windows(data: MarketData, size: int, end_rows: np.ndarray | None = None) -> Windows:
    """Windows ending at ``end_rows`` (default: every complete window)."""
    ends = valid_end_rows(data, size) if end_rows is None else np.asarray(end_rows, dtype=np.int64)
    n = len(data)
    if ends.size and (ends.min() < size - 1 or ends.max() >= n):
        bad = int(ends[(ends < size - 1) | (ends >= n)][0])
        raise DataError(
            f"{data.source or '<data>'}: no complete {size}-row window ends at row {bad + 1} "
            f"(the table has {n} rows)"
        )
    features = data.features().astype(np.float32)
    idx = ends[:, None] + np.arange(-(size - 1), 1)[None, :]
    return Windows(x=features[idx], end_rows=ends, end_times=data.timestamps_unix()[ends])


def resolve_window(data: MarketData, spec: str, size: int) -> int:
    """0-based end row of the window named by ``spec``.

    ``latest`` is the window ending at the last row; an integer ``N`` is the
    window ending at data row N (1-based, as validation errors count rows);
    anything else is read as an ISO-8601 timestamp and must match a row's
    timestamp exactly. A feed is continuous, so (unlike training windows) a
    window named here may span two synthetic episodes.
    """
    import pandas as pd

    n = len(data)
    where = data.source or "<data>"
    text = spec.strip()
    if text == "latest":
        end = n - 1
    elif text.isdigit():
        end = int(text) - 1
        if not 0 <= end < n:
            raise DataError(f"{where}: --window {text}: the table has rows 1..{n}")
    else:
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"--window '{spec}': expected 'latest', a row number or an ISO-8601 timestamp"
            ) from exc
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        hits = np.flatnonzero((data.frame[schema.TIMESTAMP] == ts).to_numpy())
        if hits.size == 0:
            raise DataError(f"{where}: --window {spec}: no row has that timestamp")
        end = int(hits[0])
    if end < size - 1:
        raise DataError(
            f"{where}: --window {spec}: row {end + 1} has only {end + 1} rows up to it, "
            f"a window needs {size}"
        )
    return end
