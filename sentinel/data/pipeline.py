"""Data-stage steps as library calls (used by the CLI, the demo and tests)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentinel.config import DataConfig
from sentinel.data import schema
from sentinel.data.calibrate import compare, healthy_stats, profile_from_stats
from sentinel.data.io import read_market_csv, write_market_csv
from sentinel.data.synthetic import CLASSIC, DEFAULT_START, MarketProfile, generate
from sentinel.data.validate import MarketData


@dataclass(frozen=True)
class GenerateResult:
    """Outcome of :func:`generate_file`."""

    path: Path
    rows: int
    episodes: int
    seed: int
    scenarios: str
    vary_market: bool
    sha256: str
    by_family: dict[str, int]
    profile: MarketProfile
    #: Per-statistic comparison with the ``--like`` file, when one was given.
    calibration: dict[str, dict[str, float | bool]] | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def generate_file(
    out: Path,
    episodes: int,
    seed: int,
    families: list[str] | None = None,
    like: Path | None = None,
    start: str | None = None,
    config: DataConfig | None = None,
    scenarios: str = CLASSIC,
    *,
    vary_market: bool = False,
) -> GenerateResult:
    """Generate scenarios of the space ``scenarios`` (optionally calibrated to a real file) and write them
    canonically."""
    profile = MarketProfile()
    reference = None
    if like is not None:
        reference = healthy_stats(read_market_csv(like, config))
        profile = profile_from_stats(reference)
    market = generate(episodes, seed, families=families, profile=profile, start=start or DEFAULT_START,
                      scenarios=scenarios, vary_market=vary_market)
    written = write_market_csv(market, out)
    calibration = None
    if reference is not None:
        # varied markets spread around the calibrated profile by design: the check is the profile's own market
        checked = market if not vary_market else generate(
            episodes, seed, families=families, profile=profile, start=start or DEFAULT_START, scenarios=scenarios)
        calibration = compare(reference, healthy_stats(checked))
    per_episode = market.frame.drop_duplicates(schema.EPISODE)[schema.FAMILY]
    return GenerateResult(
        path=written.path,
        rows=written.rows,
        episodes=episodes,
        seed=seed,
        scenarios=scenarios,
        vary_market=vary_market,
        sha256=written.sha256,
        by_family=dict(sorted(Counter(per_episode).items())),
        profile=profile,
        calibration=calibration,
    )


def summarize(data: MarketData) -> dict[str, Any]:
    """Small JSON-able description of a validated table."""
    ts = data.frame[schema.TIMESTAMP]
    return {
        "path": str(data.source) if data.source else None,
        "rows": len(data),
        "first_timestamp": ts.iloc[0].isoformat(),
        "last_timestamp": ts.iloc[-1].isoformat(),
        "cadence_seconds": data.cadence_seconds,
        "has_truth": data.has_truth,
        "dropped_columns": list(data.dropped_columns),
    }
