"""Forecast labels and crash events from the generator's ground truth (pure).

A window ending at row ``r`` is positive when a crash *begins* within the next
``horizon`` rows (onset in ``r+1 .. r+horizon``, same episode) or when ``r``
is already inside a crash (onset to price bottom). Labels come only from the
generator's ``phase`` and ``crash_onset`` columns, never from BLR: a detector
that reacts to the current BLR gets no help from the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sentinel.data import schema
from sentinel.data.validate import MarketData
from sentinel.errors import ModelError


@dataclass(frozen=True)
class CrashEvent:
    """One crash: rows are 0-based table rows."""

    episode: int
    family: str
    onset: int  #: first row of the crash phase
    bottom: int  #: last row of the crash phase (price bottom)
    end: int  #: last row of the recovery phase (or the bottom if none)


def _require_truth(data: MarketData) -> None:
    if not data.has_truth:
        raise ModelError(
            f"{data.source or '<data>'}: training and evaluation need ground-truth columns "
            "(episode, family, phase, crash_onset); generate data with `sentinel data generate`"
        )


def row_labels(data: MarketData, horizon: int) -> np.ndarray:
    """Per-row forecast label, shape (n,) int8 (see module doc)."""
    _require_truth(data)
    if horizon < 0:
        raise ModelError(f"horizon must be >= 0, got {horizon}")
    frame = data.frame
    phase = frame[schema.PHASE].to_numpy()
    episode = frame[schema.EPISODE].to_numpy()
    labels: np.ndarray = (phase == schema.CRASH).astype(np.int8)
    for onset in np.flatnonzero(frame[schema.CRASH_ONSET].to_numpy() == 1).tolist():
        lo = max(0, onset - horizon)
        rows = np.arange(lo, onset)
        labels[rows[episode[rows] == episode[onset]]] = 1
    return labels


def crash_events(data: MarketData) -> list[CrashEvent]:
    """Every crash in the table, in row order."""
    _require_truth(data)
    frame = data.frame
    phase = frame[schema.PHASE].to_numpy()
    episode = frame[schema.EPISODE].to_numpy()
    family = frame[schema.FAMILY].to_numpy()
    events: list[CrashEvent] = []
    for onset in np.flatnonzero(frame[schema.CRASH_ONSET].to_numpy() == 1):
        ep = episode[onset]
        bottom = onset
        while bottom + 1 < len(phase) and episode[bottom + 1] == ep and phase[bottom + 1] == schema.CRASH:
            bottom += 1
        end = bottom
        while end + 1 < len(phase) and episode[end + 1] == ep and phase[end + 1] == schema.RECOVERY:
            end += 1
        events.append(CrashEvent(int(ep), str(family[onset]), int(onset), int(bottom), int(end)))
    return events
