"""Calibrate the synthetic healthy regime to a real market-depth file.

Real markets often sit far from the seed's ranges (healthy BLR below 1.0 for
hours, prices in the tens of thousands, volumes in single units). The same
statistics are computed on a real file (all rows are taken as healthy: a real
feed is overwhelmingly so) and on a generated file (rows of the ``healthy``
phase only), so a test can hold the generator to them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from sentinel.data import schema
from sentinel.data.synthetic import MarketProfile
from sentinel.data.validate import MarketData
from sentinel.errors import DataError

#: Minimum rows needed to estimate a profile.
MIN_ROWS = 30

#: Stated tolerances of ``--like`` (relative error of each statistic). The
#: levels are medians and must come back close; noise figures are estimated
#: from finite, autocorrelated samples and get more room.
TOLERANCES: dict[str, float] = {
    "price": 0.05,
    "depth": 0.10,
    "blr": 0.05,
    "blr_log_std": 0.25,
    "depth_log_std": 0.25,
    "return_vol": 0.25,
}


@dataclass(frozen=True)
class HealthyStats:
    """Healthy-regime statistics of a market-depth table."""

    rows: int
    price: float  #: median mid price
    depth: float  #: median sqrt(buy_volume * sell_volume)
    depth_log_std: float
    depth_ar: float
    blr: float  #: median blr
    blr_log_std: float
    blr_ar: float
    return_vol: float  #: std of one-row log returns (outliers beyond 8 MAD clipped)
    cadence_seconds: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _runs_mask(keep: np.ndarray) -> np.ndarray:
    """True at i>0 where rows i-1 and i are both kept (a consecutive pair)."""
    pair = np.zeros_like(keep)
    pair[1:] = keep[1:] & keep[:-1]
    return pair


def _lag1(x: np.ndarray, pair: np.ndarray) -> float:
    idx = np.flatnonzero(pair)
    if idx.size < 3:
        return 0.0
    a, b = x[idx - 1], x[idx]
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def healthy_stats(data: MarketData) -> HealthyStats:
    """Statistics of the healthy rows (``phase == healthy`` if labelled, else all rows)."""
    frame = data.frame
    keep = np.ones(len(frame), dtype=bool)
    if data.has_truth:
        keep = (frame[schema.PHASE] == schema.HEALTHY).to_numpy()
    if keep.sum() < MIN_ROWS:
        raise DataError(
            f"{data.source or '<data>'}: {int(keep.sum())} healthy rows, need at least {MIN_ROWS} "
            "to estimate market statistics"
        )
    pair = _runs_mask(keep)
    log_depth = 0.5 * np.log(frame[schema.BUY_VOLUME].to_numpy() * frame[schema.SELL_VOLUME].to_numpy())
    log_blr = np.log(frame[schema.BLR].to_numpy())
    log_price = np.log(frame[schema.MID_PRICE].to_numpy())
    returns = np.diff(log_price)[pair[1:]]
    if returns.size >= 2:
        med = np.median(returns)
        mad = np.median(np.abs(returns - med)) * 1.4826
        if mad > 0:
            returns = np.clip(returns, med - 8 * mad, med + 8 * mad)
        return_vol = float(np.std(returns))
    else:
        return_vol = 0.0
    return HealthyStats(
        rows=int(keep.sum()),
        price=float(np.median(np.exp(log_price[keep]))),
        depth=float(np.exp(np.median(log_depth[keep]))),
        depth_log_std=float(np.std(log_depth[keep])),
        depth_ar=_lag1(log_depth, pair),
        blr=float(np.exp(np.median(log_blr[keep]))),
        blr_log_std=float(np.std(log_blr[keep])),
        blr_ar=_lag1(log_blr, pair),
        return_vol=return_vol,
        cadence_seconds=data.cadence_seconds,
    )


def profile_from_stats(stats: HealthyStats, base: MarketProfile | None = None) -> MarketProfile:
    """A generator profile whose healthy regime reproduces ``stats``.

    Degenerate inputs (a flat price, constant depth) get small positive noise
    so the generator still produces a valid, strictly positive series.
    """
    base = base or MarketProfile()
    if stats.return_vol <= 0 or not np.isfinite(stats.return_vol):
        raise DataError("cannot calibrate: the file's mid_price never changes between rows")
    profile = replace(
        base,
        price=stats.price,
        depth=stats.depth,
        depth_log_std=max(stats.depth_log_std, 1e-4),
        depth_ar=float(np.clip(stats.depth_ar, 0.0, 0.995)),
        blr=stats.blr,
        blr_log_std=max(stats.blr_log_std, 1e-4),
        blr_ar=float(np.clip(stats.blr_ar, 0.0, 0.995)),
        return_vol=stats.return_vol,
        cadence_seconds=stats.cadence_seconds or base.cadence_seconds,
    )
    profile.check()
    return profile


def compare(reference: HealthyStats, candidate: HealthyStats) -> dict[str, dict[str, float | bool]]:
    """Relative error of each toleranced statistic and whether it is within tolerance."""
    report: dict[str, dict[str, float | bool]] = {}
    for name, tol in TOLERANCES.items():
        ref, got = getattr(reference, name), getattr(candidate, name)
        rel = abs(got - ref) / abs(ref) if ref else float("inf")
        report[name] = {"reference": ref, "generated": got, "rel_error": rel, "tolerance": tol,
                        "ok": bool(rel <= tol)}
    return report
