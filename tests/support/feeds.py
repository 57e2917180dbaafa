"""Crawler-format feeds made by a process independent of Sentinel's generator.

Used where a test needs "a real market's file" (calibration, ingestion) and to
make ``data/sample_market_depth.csv``. The process is deliberately different
from :mod:`sentinel.data.synthetic` (regime-switching volatility instead of
GARCH, mean-reverting depth in levels, jittered scraper timestamps, the
crawler's rounding), so calibrating to it is not circular.

    python -m tests.support.feeds --out data/sample_market_depth.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def btc_like_rows(
    rows: int = 2000,
    seed: int = 3,
    price: float = 64_000.0,
    depth: float = 3.0,
    blr: float = 0.7,
    blr_log_std: float = 0.2,
    return_vol: float = 0.0008,
    cadence: float = 60.0,
) -> list[list[str]]:
    """Header plus ``rows`` crawler-style rows of a BTC-like market (BLR below 1)."""
    rng = np.random.default_rng(seed)
    # Two volatility regimes with sticky switching.
    regime = np.zeros(rows, dtype=int)
    for i in range(1, rows):
        regime[i] = regime[i - 1] if rng.random() > 0.01 else 1 - regime[i - 1]
    vol_ratio = 2.0
    low = return_vol / np.sqrt((1 + vol_ratio**2) / 2)
    sigma = np.where(regime == 1, low * vol_ratio, low)
    log_price = np.log(price) + np.cumsum(sigma * rng.standard_normal(rows))
    log_price -= np.median(log_price) - np.log(price)
    phi = 0.98
    x = np.zeros(rows)
    for i in range(1, rows):
        x[i] = phi * x[i - 1] + blr_log_std * np.sqrt(1 - phi**2) * rng.standard_normal()
    d = np.zeros(rows)  # depth deviation in levels, mean-reverting
    for i in range(1, rows):
        d[i] = 0.9 * d[i - 1] + 0.04 * depth * rng.standard_normal()
    depth_level = np.maximum(depth + d, 0.2 * depth)
    ratio = blr * np.exp(x)
    buy = np.round(depth_level * np.sqrt(ratio), 4)
    sell = np.round(depth_level / np.sqrt(ratio), 4)
    mid = np.round(np.exp(log_price), 2)
    t0 = np.datetime64("2025-12-13T08:44:16.180")
    jitter = rng.uniform(-0.8, 0.8, size=rows)
    seconds = np.arange(rows) * cadence + jitter + 0.8
    out = [["timestamp", "blr", "buy_volume", "sell_volume", "mid_price", "alert_triggered"]]
    for i in range(rows):
        ts = t0 + np.timedelta64(round(seconds[i] * 1000), "ms")
        b = buy[i] / sell[i]
        out.append([
            np.datetime_as_string(ts, unit="ms") + "Z",
            f"{b:.4f}",
            f"{buy[i]:.4f}",
            f"{sell[i]:.4f}",
            f"{mid[i]:.2f}",
            "true" if b < 0.4 else "false",
        ])
    return out


def write_rows(path: Path, rows: list[list[str]]) -> None:
    """Write rows as CSV lines (no quoting needed for these values)."""
    Path(path).write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    write_rows(args.out, btc_like_rows(args.rows, args.seed))
