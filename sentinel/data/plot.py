"""Pictures of market-depth data: BLR, price and depth with crash phases shaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentinel.artifacts import atomic_path
from sentinel.data import schema
from sentinel.data.validate import MarketData
from sentinel.errors import DataError

#: Phase -> (colour, label) used for shading; healthy rows are not shaded.
PHASE_STYLE: dict[str, tuple[str, str]] = {
    schema.STRESS: ("#f2c14e", "stress (pre-crash)"),
    schema.CRASH: ("#d1495b", "crash (onset to bottom)"),
    schema.RECOVERY: ("#66a182", "recovery"),
    schema.DIP: ("#8d99ae", "dip (hard negative)"),
    schema.SPIKE: ("#b8b8d1", "volume spike (hard negative)"),
}

#: The seed crawler's alert level.
SEED_BLR_ALERT = 0.4


@dataclass(frozen=True)
class PlotResult:
    """What was drawn."""

    path: Path
    rows: int
    first_row: int
    last_row: int


def select_rows(
    data: MarketData, episode: int | None = None, first: int | None = None, last: int | None = None
) -> tuple[int, int]:
    """Inclusive 1-based row range for an episode or an explicit range."""
    n = len(data)
    if episode is not None:
        if not data.has_truth:
            raise DataError(f"{data.source or '<data>'}: --episode needs ground-truth columns (synthetic data)")
        rows = np.flatnonzero(data.frame[schema.EPISODE].to_numpy() == episode)
        if rows.size == 0:
            raise DataError(f"{data.source or '<data>'}: no episode {episode}")
        return int(rows[0]) + 1, int(rows[-1]) + 1
    lo = 1 if first is None else first
    hi = n if last is None else last
    if not 1 <= lo <= hi <= n:
        raise DataError(f"{data.source or '<data>'}: row range {lo}..{hi} is outside 1..{n}")
    return lo, hi


def plot_market(
    data: MarketData, out: Path, first_row: int = 1, last_row: int | None = None, title: str | None = None
) -> PlotResult:
    """Draw BLR, mid price and both depths over time to a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last_row = len(data) if last_row is None else last_row
    frame = data.frame.iloc[first_row - 1 : last_row]
    t = frame[schema.TIMESTAMP].dt.tz_convert(None).to_numpy()
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True, constrained_layout=True)
    ax_blr, ax_price, ax_vol = axes
    ax_blr.plot(t, frame[schema.BLR], color="#1d3557", lw=0.8)
    ax_blr.axhline(SEED_BLR_ALERT, color="#d1495b", ls="--", lw=0.8, label="seed alert: BLR < 0.4")
    ax_blr.set_ylabel("BLR (buy / sell depth)")
    ax_price.plot(t, frame[schema.MID_PRICE], color="#2a2a2a", lw=0.8)
    ax_price.set_ylabel("mid price")
    ax_vol.plot(t, frame[schema.BUY_VOLUME], color="#2a9d8f", lw=0.7, label="buy depth")
    ax_vol.plot(t, frame[schema.SELL_VOLUME], color="#e76f51", lw=0.7, label="sell depth")
    ax_vol.set_ylabel("depth")
    ax_vol.set_xlabel("time (UTC)")

    if data.has_truth:
        phase = frame[schema.PHASE].to_numpy()
        for name, (colour, label) in PHASE_STYLE.items():
            mask = phase == name
            if not mask.any():
                continue
            for i, ax in enumerate(axes):
                lo, hi = ax.get_ylim()
                ax.fill_between(t, lo, hi, where=mask, color=colour, alpha=0.25, lw=0,
                                label=label if i == 0 else None, step="mid")
                ax.set_ylim(lo, hi)
    ax_blr.legend(loc="upper right", fontsize=8, ncol=3)
    ax_vol.legend(loc="upper right", fontsize=8)
    source = data.source.name if data.source else "market depth"
    fig.suptitle(title or f"{source}: rows {first_row}-{last_row}")
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return PlotResult(path=out, rows=len(frame), first_row=first_row, last_row=last_row)
