"""Recomputing reported windows from archived raw rows (``--data``).

For each report whose window ends at a row of one of the files, the window's
rows are run through the published compiled circuit (witness generation, no
proving key) to get the Poseidon input hash, which must equal the proven one;
and through the ONNX model (onnxruntime) to get the float score, whose gap to
the proven score must stay within the tolerance. The windows nobody
reported are cut from the same rows and scored in one batch for the
suppression check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentinel.errors import AuditDataError, SentinelError

if TYPE_CHECKING:
    from sentinel.data.validate import MarketData


@dataclass(frozen=True)
class Archive:
    """One validated raw-data file, indexed by row end time (unix seconds)."""

    path: Path
    market: MarketData
    times: np.ndarray
    row_of: dict[int, int]


def load_archives(paths: list[Path]) -> list[Archive]:
    """Read and validate every ``--data`` file; an unreadable or invalid one stops the audit (exit 2)."""
    from sentinel.data.io import read_market_csv

    out = []
    for path in paths:
        try:
            market = read_market_csv(Path(path))
        except SentinelError as exc:
            raise AuditDataError(Path(path), f"cannot use as archived rows: {exc}") from exc
        times = market.timestamps_unix()
        out.append(Archive(Path(path), market, times, {int(t): i for i, t in enumerate(times)}))
    return out


def locate(archives: list[Archive], end_unix: int, size: int) -> tuple[Archive, int] | None:
    """The archive and 0-based end row of the complete ``size``-row window ending at ``end_unix``."""
    for archive in archives:
        row = archive.row_of.get(int(end_unix))
        if row is not None and row >= size - 1:
            return archive, row
    return None


def raw_window(archive: Archive, end_row: int, size: int) -> np.ndarray:
    """The window's rows as read (float64), exactly what the prover hashed, shape (size, 4)."""
    rows: np.ndarray = archive.market.features()[end_row - size + 1 : end_row + 1]
    return rows


def window_ends(archive: Archive, size: int, since: float, until: float) -> list[tuple[int, int]]:
    """``(end unix, end row)`` of every complete ``size``-row window ending in [since, until), in row order.

    A window ends at its last row's time (whole seconds, rounded down, as the relay stamps it).
    """
    ends = archive.times
    rows = np.flatnonzero((np.arange(len(ends)) >= size - 1) & (ends >= since) & (ends < until))
    return [(int(ends[r]), int(r)) for r in rows]


def windows_at(archive: Archive, end_rows: list[int], size: int) -> np.ndarray:
    """The windows ending at ``end_rows`` (each >= size - 1) as read, shape (n, size, 4) float64."""
    from numpy.lib.stride_tricks import sliding_window_view

    if not end_rows:
        return np.empty((0, size, 4))
    view = sliding_window_view(archive.market.features(), (size, 4))[:, 0]  # (rows - size + 1, size, 4), no copy
    picked: np.ndarray = view[np.asarray(end_rows) - (size - 1)]
    return picked


def float_scores(onnx: Path, windows: np.ndarray) -> np.ndarray:
    """Float model scores of windows (n, W, 4) via onnxruntime, as the prover's float_score."""
    from sentinel.model.export import onnx_scores

    if len(windows) == 0:
        return np.empty(0)
    return onnx_scores(onnx, windows.astype(np.float32))
