"""Recomputing reported windows from archived raw rows (``--data``).

For each report whose window ends at a row of one of the files, the window's
rows are run through the published compiled circuit (witness generation, no
proving key) to get the Poseidon input hash, which must equal the proven one;
and through the ONNX model (onnxruntime) to get the float score, whose gap to
the proven score must stay within the tolerance.
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


def float_scores(onnx: Path, windows: np.ndarray) -> np.ndarray:
    """Float model scores of windows (n, W, 4) via onnxruntime, as the prover's float_score."""
    from sentinel.model.export import onnx_scores

    if len(windows) == 0:
        return np.empty(0)
    return onnx_scores(onnx, windows.astype(np.float32))
