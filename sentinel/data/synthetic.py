"""Seeded synthetic liquidity-crash scenarios.

The generator writes the seed crawler's schema plus ground truth. A file is a
sequence of *episodes*, each a healthy stretch followed by one event of its
*family*, then a calm tail; episodes follow each other without a jump in
price or state, so the file is also a plausible continuous feed for the relay.

Healthy regime (per row, ``u`` = one cadence):

* log mid price: GARCH(1,1) returns with Student-t shocks (volatility
  clustering, fat tails) and a slow pull toward the profile's price level;
* log BLR: AR(1) around the profile's median BLR, its shocks partly
  correlated with returns (order flow moves price);
* log depth (geometric mean of the two sides): AR(1) around the profile level.

Events are overlays on the log BLR, log depth, log price and on volatility:

* ``drain`` (the seed scenario): BLR decays exponentially from healthy to
  ~0.29 x its median (0.35 for the default 1.22), sell depth rises while buy
  depth collapses, price falls 12-18 % over 40-90 rows; often preceded by a
  faint ``stress`` phase (depth thinning, BLR softening);
* ``flash``: the same in 3-8 rows, deeper, with a volatility burst;
* ``bleed``: a slow linear slide over 150-300 rows to ~0.4 x BLR, -10-15 %;
* ``dip`` (hard negative): BLR drops to 0.3-0.7 x for 10-40 rows, price barely
  moves, then everything recovers;
* ``spike`` (hard negative): depth on both sides jumps 2-4 x with noisy BLR
  and volatility, and no crash.

A crash's ``crash`` phase runs from its onset to its price bottom; ``recovery``
follows. :func:`generate` is a pure function of its arguments: the same seed
gives the same table, hence (through the canonical writer) the same bytes.

Two scenario spaces (``scenarios``): ``classic`` draws each family from the
fixed ranges above (the space models before 2026-11-27 were trained on; its
files are byte-identical to theirs); ``ranges`` draws each crash family as
ranges of continuous parameters (:class:`CrashRanges`: duration from a few
rows to several hundred, depth of the BLR and price fall, each side's depth
path, the fall's curvature and lags, pre-crash stress, noise) and adds hard
negatives labelled healthy: ``drift`` (a slow healthy BLR drift),
``withdrawal`` (depth on both sides withdrawn and back) and ``move`` (a price
move without liquidity loss). A region of each of some families' durations
(the slowest drains, the fastest flashes: :attr:`CrashRanges.unseen_rows`) is
*unseen*: ``region="train"`` (the default, and all training data) never
draws it, ``region="unseen"`` draws only it, for ``evaluate --fresh``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sentinel.data import schema
from sentinel.data.validate import MarketData
from sentinel.errors import DataError

DEFAULT_START = "2025-01-01T00:00:00Z"


@dataclass(frozen=True)
class MarketProfile:
    """Healthy-regime statistics the generator reproduces (one row = one cadence)."""

    price: float = 3000.0  #: median mid price
    depth: float = 2500.0  #: median geometric-mean depth per side, sqrt(buy * sell)
    depth_log_std: float = 0.15  #: std of log depth
    depth_ar: float = 0.95  #: lag-1 autocorrelation of log depth
    blr: float = 1.22  #: median BLR (1.0-1.5 covers +-2 std by default)
    blr_log_std: float = 0.10  #: std of log BLR
    blr_ar: float = 0.97  #: lag-1 autocorrelation of log BLR
    return_vol: float = 0.0012  #: std of one-row log returns
    vol_alpha: float = 0.08  #: GARCH shock weight
    vol_persistence: float = 0.95  #: GARCH alpha + beta (volatility clustering)
    cadence_seconds: float = 60.0  #: seconds between rows

    def check(self) -> None:
        """Raise ``DataError`` when a field is outside its meaningful range."""
        positive = ("price", "depth", "blr", "return_vol", "cadence_seconds")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise DataError(f"market profile: {name} must be a positive number, got {value!r}")
        for name in ("depth_log_std", "blr_log_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value < 3):
                raise DataError(f"market profile: {name} must be in [0, 3), got {value!r}")
        for name in ("depth_ar", "blr_ar"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise DataError(f"market profile: {name} must be in [0, 1), got {value!r}")
        if not 0 <= self.vol_alpha < self.vol_persistence < 1:
            raise DataError("market profile: need 0 <= vol_alpha < vol_persistence < 1")


#: Scenario spaces (see the module doc).
CLASSIC = "classic"
RANGES = "ranges"
SCENARIO_SPACES: tuple[str, ...] = (CLASSIC, RANGES)
#: Regions of the ``ranges`` space: what training draws, and the unseen shapes it never draws.
TRAIN_REGION = "train"
UNSEEN_REGION = "unseen"
REGIONS: tuple[str, ...] = (TRAIN_REGION, UNSEEN_REGION)

#: Default mix of families when none are chosen (weights, renormalised): the ``classic`` space.
DEFAULT_MIX: dict[str, float] = {
    schema.DRAIN: 0.26,
    schema.FLASH: 0.14,
    schema.BLEED: 0.14,
    schema.DIP: 0.26,
    schema.SPIKE: 0.20,
}
#: Default mix of the ``ranges`` space: every crash family and every hard negative, none under 10 %.
RANGES_MIX: dict[str, float] = {
    schema.DRAIN: 0.18,
    schema.FLASH: 0.16,
    schema.BLEED: 0.14,
    schema.DIP: 0.10,
    schema.SPIKE: 0.10,
    schema.DRIFT: 0.10,
    schema.WITHDRAWAL: 0.11,
    schema.MOVE: 0.11,
}


@dataclass(frozen=True)
class CrashRanges:
    """A crash family in the ``ranges`` space: each parameter a (low, high) range, drawn uniformly
    (``rows`` log-uniformly, so short and long crashes are both common)."""

    rows: tuple[int, int]  #: crash duration, onset to price bottom, in rows (all regions)
    unseen_rows: tuple[int, int] | None  #: the durations training never draws (an end of ``rows``), or None
    blr_ratio: tuple[float, float]  #: BLR at the bottom / healthy BLR
    drop: tuple[float, float]  #: price fall from onset to bottom, as a fraction
    sell_ratio: tuple[float, float]  #: sell-side depth at the bottom / healthy; buy side = blr_ratio x this
    curvature: tuple[float, float]  #: rate of the exponential approach (near 0: linear; 4: front-loaded)
    depth_lag: tuple[float, float]  #: share of the crash before depth starts to move (after BLR)
    price_lag: tuple[float, float]  #: share of the crash before the price starts to fall
    vol_peak: tuple[float, float]  #: volatility multiplier at the bottom
    stress_p: float  #: probability of a pre-crash stress phase
    stress_rows: tuple[int, int]  #: its length
    stress_blr: tuple[float, float]  #: its BLR softening (fraction)
    stress_depth: tuple[float, float]  #: its depth thinning (fraction)

    def region_rows(self, region: str) -> tuple[int, int] | None:
        """The durations ``region`` draws from (None: the family has no unseen region)."""
        if region == UNSEEN_REGION:
            return self.unseen_rows
        if self.unseen_rows is None:
            return self.rows
        lo, hi = self.rows
        u_lo, u_hi = self.unseen_rows
        return (u_hi + 1, hi) if u_lo == lo else (lo, u_lo - 1)


#: The crash families of the ``ranges`` space. Training never sees drains slower than 150 rows or flash
#: crashes faster than 5 rows; ``evaluate --fresh`` measures recall on them apart.
CRASH_RANGES: dict[str, CrashRanges] = {
    schema.DRAIN: CrashRanges(
        rows=(20, 300), unseen_rows=(151, 300), blr_ratio=(0.2, 0.4), drop=(0.08, 0.2), sell_ratio=(1.0, 1.8),
        curvature=(0.5, 4.0), depth_lag=(0.0, 0.3), price_lag=(0.0, 0.25), vol_peak=(1.5, 3.0),
        stress_p=0.7, stress_rows=(5, 60), stress_blr=(0.02, 0.15), stress_depth=(0.05, 0.25),
    ),
    schema.FLASH: CrashRanges(
        rows=(3, 20), unseen_rows=(3, 4), blr_ratio=(0.12, 0.35), drop=(0.08, 0.25), sell_ratio=(0.5, 1.2),
        curvature=(1.0, 3.0), depth_lag=(0.0, 0.2), price_lag=(0.0, 0.1), vol_peak=(3.0, 6.0),
        stress_p=0.4, stress_rows=(2, 10), stress_blr=(0.02, 0.12), stress_depth=(0.05, 0.2),
    ),
    schema.BLEED: CrashRanges(
        rows=(100, 400), unseen_rows=None, blr_ratio=(0.3, 0.5), drop=(0.06, 0.15), sell_ratio=(0.9, 1.3),
        curvature=(0.05, 1.0), depth_lag=(0.0, 0.1), price_lag=(0.0, 0.1), vol_peak=(1.1, 1.6),
        stress_p=0.5, stress_rows=(20, 60), stress_blr=(0.02, 0.1), stress_depth=(0.05, 0.2),
    ),
}
#: ``ranges`` space: each episode's healthy noise (returns, BLR, depth shocks) is x a draw from this range.
EPISODE_NOISE = (0.7, 1.6)
#: Families with an unseen region, in report order.
UNSEEN_FAMILIES: tuple[str, ...] = tuple(f for f, r in CRASH_RANGES.items() if r.unseen_rows is not None)


@dataclass(frozen=True)
class MarketRanges:
    """How far an episode's healthy market may lie from the profile when ``generate(vary_market=True)``.

    A model standardises BLR with its training rows' statistics, so a market whose healthy BLR sits lower or
    moves more than the profile's looks stressed to a model that only saw the profile's. Drawing each
    episode's healthy regime from these ranges teaches it that a BLR level, or its noise, is not a crash: a
    fall from where the market was is. The BLR level moves between episodes as a slow walk (a level the
    state reaches through its own AR(1) memory, so there is no jump at an episode boundary); the rest is
    drawn per episode. Factors multiply the profile's value; ``depth_ar`` is absolute.
    """

    blr: tuple[float, float] = (0.85, 1.2)  #: healthy median BLR, x the profile's (a reflected walk in log)
    blr_step: float = 0.1  #: std of the walk's step per episode, in log BLR
    blr_log_std: tuple[float, float] = (0.8, 1.7)  #: std of log BLR, x the profile's
    depth_ar: tuple[float, float] = (0.85, 0.97)  #: lag-1 autocorrelation of log depth
    return_vol: tuple[float, float] = (0.5, 1.3)  #: std of one-row log returns, x the profile's


#: The healthy markets ``vary_market`` draws from.
MARKET_RANGES = MarketRanges()


class _MarketWalk:
    """Each episode's healthy market under :data:`MARKET_RANGES` (its own random stream)."""

    def __init__(self, profile: MarketProfile, rng: np.random.Generator, ranges: MarketRanges | None = None) -> None:
        self.profile, self.rng, self.ranges = profile, rng, ranges or MARKET_RANGES
        self.log_level = 0.0  # log of the BLR factor: the walk starts at the profile's level

    def next(self) -> MarketProfile:
        r, p = self.ranges, self.profile
        lo, hi = math.log(r.blr[0]), math.log(r.blr[1])
        level = self.log_level + float(self.rng.normal(0.0, r.blr_step))
        while not lo <= level <= hi:  # reflect at the ends: the walk spreads over the whole range
            level = 2 * lo - level if level < lo else 2 * hi - level
        self.log_level = level
        return replace(
            p,  # the draws in this order: the stream's bytes are pinned by the committed model's training data
            depth_ar=_uniform(self.rng, r.depth_ar),
            blr=p.blr * math.exp(level),
            blr_log_std=p.blr_log_std * _uniform(self.rng, r.blr_log_std),
            return_vol=p.return_vol * _uniform(self.rng, r.return_vol),
        )


@dataclass
class _Overlay:
    """Per-row event overlays for one episode plus its phase labels."""

    phase: list[str]
    log_blr: list[float]
    log_depth: list[float]
    log_price: list[float]  # target offset of log price (applied as increments)
    vol: list[float]  # volatility multiplier

    @classmethod
    def healthy(cls, n: int) -> _Overlay:
        return cls([schema.HEALTHY] * n, [0.0] * n, [0.0] * n, [0.0] * n, [1.0] * n)

    def hold(self, n: int) -> _Overlay:
        """``n`` healthy rows that keep the price level the last event left behind."""
        tail = _Overlay.healthy(n)
        tail.log_price = [self.last()[2]] * n
        return tail

    def extend(self, other: _Overlay) -> None:
        for name in ("phase", "log_blr", "log_depth", "log_price", "vol"):
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(self.phase)

    def last(self) -> tuple[float, float, float, float]:
        if not self.phase:
            return (0.0, 0.0, 0.0, 1.0)
        return (self.log_blr[-1], self.log_depth[-1], self.log_price[-1], self.vol[-1])


def _segment(
    phase: str,
    n: int,
    start: tuple[float, float, float, float],
    end: tuple[float, float, float, float],
    shape: Callable[[float], float],
    price_shape: Callable[[float], float] | None = None,
    depth_shape: Callable[[float], float] | None = None,
) -> _Overlay:
    """Move overlays from ``start`` to ``end`` over ``n`` rows along ``shape(u)``, u in (0, 1]."""
    seg = _Overlay([phase] * n, [], [], [], [])
    price_shape = price_shape or shape
    depth_shape = depth_shape or shape
    for i in range(n):
        u = (i + 1) / n
        s, sp = shape(u), price_shape(u)
        seg.log_blr.append(start[0] + (end[0] - start[0]) * s)
        seg.log_depth.append(start[1] + (end[1] - start[1]) * depth_shape(u))
        seg.log_price.append(start[2] + (end[2] - start[2]) * sp)
        seg.vol.append(start[3] + (end[3] - start[3]) * s)
    return seg


def _exp_approach(rate: float) -> Callable[[float], float]:
    norm = 1.0 - math.exp(-rate)
    return lambda u: (1.0 - math.exp(-rate * u)) / norm


def _linear(u: float) -> float:
    return u


def _bump(u: float) -> float:
    return math.sin(math.pi * u)


def _lagged(shape: Callable[[float], float], lag: float) -> Callable[[float], float]:
    return lambda u: shape(max(0.0, u - lag) / (1.0 - lag))


def _crash_event(family: str, rng: np.random.Generator) -> _Overlay:
    """Stress (maybe), crash (onset to bottom) and recovery overlays of one ``classic`` crash."""
    if family == schema.DRAIN:
        stress_p, stress_len = 0.7, (10, 40)
        crash_len = int(rng.integers(40, 91))
        blr_ratio = rng.uniform(0.25, 0.33)
        drop = rng.uniform(0.12, 0.18)
        depth_ratio = rng.uniform(0.7, 0.85)  # with the BLR fall: sell depth up ~1.4x, buy down ~0.4x
        vol_peak = rng.uniform(2.0, 3.0)
        shape = _exp_approach(3.0)
        price_shape = _lagged(shape, 0.1)
    elif family == schema.FLASH:
        stress_p, stress_len = 0.4, (2, 8)
        crash_len = int(rng.integers(3, 9))
        blr_ratio = rng.uniform(0.18, 0.3)
        drop = rng.uniform(0.10, 0.20)
        depth_ratio = rng.uniform(0.3, 0.5)
        vol_peak = rng.uniform(4.0, 6.0)
        shape = _exp_approach(1.5)
        price_shape = shape
    elif family == schema.BLEED:
        stress_p, stress_len = 0.5, (20, 60)
        crash_len = int(rng.integers(150, 301))
        blr_ratio = rng.uniform(0.35, 0.45)
        drop = rng.uniform(0.10, 0.15)
        depth_ratio = rng.uniform(0.6, 0.8)
        vol_peak = rng.uniform(1.2, 1.6)
        shape = _linear
        price_shape = _lagged(_linear, 0.05)
    else:  # pragma: no cover - guarded by generate()
        raise DataError(f"'{family}' is not a crash family")

    events = _Overlay.healthy(0)
    if rng.random() < stress_p:
        n = int(rng.integers(stress_len[0], stress_len[1] + 1))
        soft = (
            math.log(1.0 - rng.uniform(0.04, 0.12)),
            math.log(1.0 - rng.uniform(0.08, 0.2)),
            math.log(1.0 - rng.uniform(0.0, 0.01)),
            1.0 + rng.uniform(0.2, 0.5),
        )
        events.extend(_segment(schema.STRESS, n, events.last(), soft, _linear))
    bottom = (math.log(blr_ratio), math.log(depth_ratio), math.log(1.0 - drop), vol_peak)
    events.extend(_segment(schema.CRASH, crash_len, events.last(), bottom, shape, price_shape))
    recovered = 1.0 - drop * (1.0 - rng.uniform(0.2, 0.6))
    rest = (0.0, 0.0, math.log(recovered), 1.0)
    recovery_len = int(rng.integers(60, 151))
    events.extend(_segment(schema.RECOVERY, recovery_len, events.last(), rest, _exp_approach(3.0)))
    return events


@dataclass(frozen=True)
class CrashParams:
    """One crash drawn from :data:`CRASH_RANGES` (see :class:`CrashRanges` for each field)."""

    family: str
    rows: int
    blr_ratio: float
    drop: float
    sell_ratio: float
    curvature: float
    depth_lag: float
    price_lag: float
    vol_peak: float
    stress_rows: int  #: 0: no stress phase
    stress_blr: float
    stress_depth: float
    recovered: float  #: share of the fall the recovery wins back
    recovery_rows: int


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def draw_crash(family: str, rng: np.random.Generator, region: str = TRAIN_REGION) -> CrashParams:
    """One crash of ``family`` from the ``ranges`` space, its duration from ``region``'s rows.

    Raises ``DataError`` for a family that is not a crash family, or has no ``region``.
    """
    ranges = CRASH_RANGES.get(family)
    if ranges is None:
        raise DataError(f"'{family}' is not a crash family")
    rows = ranges.region_rows(region)
    if rows is None:
        raise DataError(f"family '{family}' has no {region} region (families with one: {', '.join(UNSEEN_FAMILIES)})")
    duration = int(np.clip(round(math.exp(rng.uniform(math.log(rows[0] - 0.5), math.log(rows[1] + 0.5)))), *rows))
    stressed = rng.random() < ranges.stress_p
    return CrashParams(
        family=family,
        rows=duration,
        blr_ratio=_uniform(rng, ranges.blr_ratio),
        drop=_uniform(rng, ranges.drop),
        sell_ratio=_uniform(rng, ranges.sell_ratio),
        curvature=_uniform(rng, ranges.curvature),
        depth_lag=_uniform(rng, ranges.depth_lag),
        price_lag=_uniform(rng, ranges.price_lag),
        vol_peak=_uniform(rng, ranges.vol_peak),
        stress_rows=int(rng.integers(ranges.stress_rows[0], ranges.stress_rows[1] + 1)) if stressed else 0,
        stress_blr=_uniform(rng, ranges.stress_blr),
        stress_depth=_uniform(rng, ranges.stress_depth),
        recovered=_uniform(rng, (0.2, 0.6)),
        recovery_rows=int(rng.integers(40, 151)),
    )


def _ranged_crash(params: CrashParams) -> _Overlay:
    """Stress (maybe), crash and recovery overlays of one crash of the ``ranges`` space."""
    events = _Overlay.healthy(0)
    if params.stress_rows:
        soft = (math.log(1.0 - params.stress_blr), math.log(1.0 - params.stress_depth), 0.0,
                1.0 + 0.5 * params.stress_depth)
        events.extend(_segment(schema.STRESS, params.stress_rows, events.last(), soft, _linear))
    shape = _exp_approach(params.curvature)
    # depth = sqrt(buy * sell) with buy = blr_ratio * sell_ratio: each side's depth ends where its ratio says
    log_depth = math.log(params.sell_ratio) + 0.5 * math.log(params.blr_ratio)
    bottom = (math.log(params.blr_ratio), log_depth, math.log(1.0 - params.drop), params.vol_peak)
    events.extend(_segment(schema.CRASH, params.rows, events.last(), bottom, shape,
                           _lagged(shape, params.price_lag), _lagged(shape, params.depth_lag)))
    rest = (0.0, 0.0, math.log(1.0 - params.drop * (1.0 - params.recovered)), 1.0)
    events.extend(_segment(schema.RECOVERY, params.recovery_rows, events.last(), rest, _exp_approach(3.0)))
    return events


def _bump_event(family: str, n: int, peak: tuple[float, float, float, float],
                price_shape: Callable[[float], float] = _bump) -> _Overlay:
    """Overlays that rise to ``peak`` and come back over ``n`` rows (price along ``price_shape``)."""
    seg = _Overlay([family] * n, [], [], [], [])
    for i in range(n):
        u = (i + 1) / (n + 1)
        b = _bump(u)
        seg.log_blr.append(peak[0] * b)
        seg.log_depth.append(peak[1] * b)
        seg.log_price.append(peak[2] * price_shape(u))
        seg.vol.append(1.0 + (peak[3] - 1.0) * b)
    return seg


def _ranged_negative(family: str, rng: np.random.Generator) -> _Overlay:
    """A hard negative of the ``ranges`` space: liquidity or price moves that are not a crash (labelled healthy)."""
    if family == schema.DIP:  # BLR falls (sometimes under the seed's alert) and comes back; price barely moves
        n = int(rng.integers(10, 41))
        peak = (math.log(rng.uniform(0.3, 0.7)), math.log(rng.uniform(0.7, 1.0)),
                math.log(1.0 - rng.uniform(0.0, 0.03)), 1.0 + rng.uniform(0.2, 0.6))
        return _bump_event(family, n, peak)
    if family == schema.SPIKE:  # depth on both sides jumps, BLR noisy, no crash
        n = int(rng.integers(5, 41))
        peak = (math.log(rng.uniform(0.6, 1.4)), math.log(rng.uniform(1.8, 4.0)),
                math.log(1.0 + rng.uniform(-0.01, 0.01)), 1.0 + rng.uniform(1.0, 2.5))
        return _bump_event(family, n, peak)
    if family == schema.DRIFT:  # a slow healthy drift of BLR, down and back over hours (milder than a bleed's)
        n = int(rng.integers(100, 301))
        peak = (math.log(rng.uniform(0.65, 0.9)), math.log(rng.uniform(0.85, 1.15)),
                math.log(1.0 + rng.uniform(-0.015, 0.015)), 1.0)
        return _bump_event(family, n, peak)
    if family == schema.WITHDRAWAL:  # depth withdrawn from both sides, then it comes back; BLR about level
        n = int(rng.integers(10, 81))
        peak = (math.log(rng.uniform(0.8, 1.1)), math.log(rng.uniform(0.25, 0.6)),
                math.log(1.0 + rng.uniform(-0.015, 0.01)), 1.0 + rng.uniform(0.2, 1.0))
        return _bump_event(family, n, peak)
    if family == schema.MOVE:  # the price moves to a new level with no liquidity loss (the level stays)
        n = int(rng.integers(5, 61))
        sign = -1.0 if rng.random() < 0.7 else 1.0
        peak = (math.log(rng.uniform(0.9, 1.1)), math.log(rng.uniform(0.9, 1.2)),
                math.log(1.0 + sign * rng.uniform(0.03, 0.10)), 1.0 + rng.uniform(0.5, 2.0))
        return _bump_event(family, n, peak, _exp_approach(rng.uniform(0.5, 3.0)))
    raise DataError(f"'{family}' is not a hard-negative family")  # pragma: no cover - guarded by generate()


def _negative_event(family: str, rng: np.random.Generator) -> _Overlay:
    """Overlays of a ``classic`` hard negative: a shock that comes and goes without a crash."""
    if family == schema.DIP:
        n = int(rng.integers(10, 41))
        peak = (
            math.log(rng.uniform(0.3, 0.7)),
            math.log(rng.uniform(0.75, 1.0)),
            math.log(1.0 - rng.uniform(0.005, 0.03)),
            1.0 + rng.uniform(0.2, 0.6),
        )
    elif family == schema.SPIKE:
        n = int(rng.integers(5, 31))
        peak = (
            math.log(rng.uniform(0.6, 1.4)),
            math.log(rng.uniform(2.0, 4.0)),
            math.log(1.0 + rng.uniform(-0.01, 0.01)),
            1.0 + rng.uniform(1.0, 2.5),
        )
    else:  # the hard negatives added with the ranges space have no classic form: the same draws
        return _ranged_negative(family, rng)
    zero = (0.0, 0.0, 0.0, 1.0)
    seg = _Overlay([family] * n, [], [], [], [])
    for i in range(n):
        b = _bump((i + 1) / (n + 1))
        seg.log_blr.append(peak[0] * b)
        seg.log_depth.append(peak[1] * b)
        seg.log_price.append(peak[2] * b)
        seg.vol.append(zero[3] + (peak[3] - 1.0) * b)
    return seg


@dataclass
class _State:
    """Latent market state carried from one row (and one episode) to the next."""

    log_price: float
    blr_dev: float
    depth_dev: float
    variance: float
    last_shock: float


def _simulate(
    overlay: _Overlay,
    profile: MarketProfile,
    state: _State,
    rng: np.random.Generator,
    noise: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the healthy processes under ``overlay`` (their shocks x ``noise``); returns blr, buy, sell, price."""
    n = len(overlay)
    df = 5.0
    shocks = rng.standard_t(df, size=n) / math.sqrt(df / (df - 2.0))  # unit variance, fat tails
    blr_noise = rng.standard_normal(n)
    depth_noise = rng.standard_normal(n)

    sigma2 = profile.return_vol**2
    alpha = profile.vol_alpha
    beta = profile.vol_persistence - alpha
    omega = sigma2 * (1.0 - profile.vol_persistence)
    anchor = math.log(profile.price)
    pull = math.log(2.0) / 150.0  # price half-life back to its level: 150 rows
    rho = 0.3  # correlation of BLR shocks with price shocks
    b_phi, d_phi = profile.blr_ar, profile.depth_ar
    b_scale = noise * profile.blr_log_std * math.sqrt(1.0 - b_phi**2)
    d_scale = noise * profile.depth_log_std * math.sqrt(1.0 - d_phi**2)

    blr = np.empty(n)
    depth = np.empty(n)
    price = np.empty(n)
    prev_price_overlay = 0.0
    log_blr0 = math.log(profile.blr)
    log_depth0 = math.log(profile.depth)
    for i in range(n):
        state.variance = omega + alpha * state.last_shock**2 + beta * state.variance
        shock = math.sqrt(state.variance) * shocks[i]
        state.last_shock = shock
        step = overlay.vol[i] * noise * shock
        step += pull * (anchor - state.log_price)
        step += overlay.log_price[i] - prev_price_overlay
        prev_price_overlay = overlay.log_price[i]
        state.log_price += step

        innovation = rho * shocks[i] + math.sqrt(1.0 - rho**2) * blr_noise[i]
        state.blr_dev = b_phi * state.blr_dev + b_scale * innovation
        state.depth_dev = d_phi * state.depth_dev + d_scale * depth_noise[i]

        blr[i] = math.exp(log_blr0 + state.blr_dev + overlay.log_blr[i])
        depth[i] = math.exp(log_depth0 + state.depth_dev + overlay.log_depth[i])
        price[i] = math.exp(state.log_price)

    # A price drop inside the episode stays in the state (only the slow pull
    # undoes it), so the next episode starts where this one ended.
    buy = depth * np.sqrt(blr)
    sell = depth / np.sqrt(blr)
    return blr, buy, sell, price


def _round_sig(values: np.ndarray, level: float, digits: int = 7) -> np.ndarray:
    decimals = max(0, digits - 1 - math.floor(math.log10(level)))
    return np.round(values, decimals)


def _parse_start(start: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise DataError(f"--start: not an ISO-8601 timestamp: '{start}'") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _check_space(scenarios: str) -> None:
    if scenarios not in SCENARIO_SPACES:
        raise DataError(f"unknown scenario space '{scenarios}' (known: {', '.join(SCENARIO_SPACES)})")


def family_mix(families: Sequence[str] | None = None, scenarios: str = CLASSIC) -> dict[str, float]:
    """Each family's share of the episodes :func:`generate` draws: ``families`` evenly, else the space's default
    mix (:data:`DEFAULT_MIX`, :data:`RANGES_MIX`).

    Raises ``DataError`` naming an unknown family or space.
    """
    _check_space(scenarios)
    default = RANGES_MIX if scenarios == RANGES else DEFAULT_MIX
    chosen = list(dict.fromkeys(families)) if families else list(default)
    unknown = [f for f in chosen if f not in schema.FAMILIES]
    if unknown:
        raise DataError(
            f"unknown scenario family '{unknown[0]}' (known: {', '.join(schema.FAMILIES)})"
        )
    weights = {f: default[f] if not families else 1.0 for f in chosen}
    total = sum(weights.values())
    return {f: w / total for f, w in weights.items()}


def generate(
    episodes: int,
    seed: int,
    families: Sequence[str] | None = None,
    profile: MarketProfile | None = None,
    start: str = DEFAULT_START,
    scenarios: str = CLASSIC,
    region: str = TRAIN_REGION,
    *,
    vary_market: bool = False,
) -> MarketData:
    """Generate ``episodes`` scenario episodes; deterministic in ``seed`` (and ``scenarios``, ``region``,
    ``vary_market``).

    ``families`` restricts (and evenly weights) the scenario families; by
    default they are drawn from the space's default mix. ``scenarios``:
    :data:`CLASSIC` or :data:`RANGES`; ``region`` (``ranges`` only):
    :data:`TRAIN_REGION` never draws a crash from a family's unseen region,
    :data:`UNSEEN_REGION` draws only there (default families: those with one,
    :data:`UNSEEN_FAMILIES`; its episodes come from another random stream
    than the same seed's training region). ``vary_market`` (``ranges`` only)
    draws each episode's healthy market from :data:`MARKET_RANGES` around
    ``profile``, from a random stream of its own, so the episodes' events are
    those of the same seed without it. Returns validated-shape
    :class:`MarketData` with ground-truth columns and the crawler's
    ``alert_triggered`` (``blr < 0.4``) flag.
    """
    if episodes < 1:
        raise DataError(f"--episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise DataError(f"--seed must be >= 0, got {seed}")
    _check_space(scenarios)
    if region not in REGIONS:
        raise DataError(f"unknown region '{region}' (known: {', '.join(REGIONS)})")
    unseen = region == UNSEEN_REGION
    if unseen and scenarios != RANGES:
        raise DataError(f"the unseen region belongs to the '{RANGES}' scenario space, not '{scenarios}'")
    if vary_market and scenarios != RANGES:
        raise DataError(f"varied healthy markets belong to the '{RANGES}' scenario space, not '{scenarios}'")
    if unseen:
        families = list(families) if families else list(UNSEEN_FAMILIES)
        lacking = [f for f in families if f not in UNSEEN_FAMILIES]
        if lacking:
            raise DataError(f"family '{lacking[0]}' has no unseen region (families with one: "
                            f"{', '.join(UNSEEN_FAMILIES)})")
    profile = profile or MarketProfile()
    profile.check()
    mix = family_mix(families, scenarios)
    chosen = list(mix)
    weights = np.array(list(mix.values()))
    t0 = _parse_start(start)

    root = np.random.SeedSequence([seed, REGIONS.index(region)] if unseen else seed)
    plan_seq, *episode_seqs = root.spawn(episodes + 1)
    plan_rng = np.random.default_rng(plan_seq)
    plan = plan_rng.choice(len(chosen), size=episodes, p=weights)
    walk = _MarketWalk(profile, np.random.default_rng(root.spawn(1)[0])) if vary_market else None

    state = _State(math.log(profile.price), 0.0, 0.0, profile.return_vol**2, 0.0)
    parts: list[dict[str, np.ndarray]] = []
    market = profile
    for episode, (family_idx, seq) in enumerate(zip(plan, episode_seqs, strict=True)):
        family = chosen[int(family_idx)]
        rng = np.random.default_rng(seq)
        if walk is not None:
            previous, market = market, walk.next()
            state.blr_dev += math.log(previous.blr / market.blr)  # the BLR carries on; its memory pulls it over
        overlay = _Overlay.healthy(int(rng.integers(120, 261)))
        noise = 1.0
        if scenarios == CLASSIC:
            event = (_crash_event(family, rng) if family in schema.CRASH_FAMILIES
                     else _negative_event(family, rng))
        elif family in schema.CRASH_FAMILIES:
            params = draw_crash(family, rng, region)
            event = _ranged_crash(params)
            noise = _uniform(rng, EPISODE_NOISE)
        else:
            event = _ranged_negative(family, rng)
            noise = _uniform(rng, EPISODE_NOISE)
        overlay.extend(event)
        overlay.extend(overlay.hold(int(rng.integers(40, 101))))
        blr, buy, sell, price = _simulate(overlay, market, state, rng, noise)
        phase = np.array(overlay.phase, dtype=object)
        onset = np.zeros(len(phase), dtype=np.int8)
        crash_rows = np.flatnonzero(phase == schema.CRASH)
        if crash_rows.size:
            onset[crash_rows[0]] = 1
        parts.append(
            {
                "blr": blr, "buy": buy, "sell": sell, "price": price, "phase": phase,
                "onset": onset, "episode": np.full(len(phase), episode, dtype=np.int64),
                "family": np.full(len(phase), family, dtype=object),
            }
        )

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    buy = _round_sig(cat("buy"), profile.depth)
    sell = _round_sig(cat("sell"), profile.depth)
    price = _round_sig(cat("price"), profile.price)
    blr = np.round(buy / sell, 6)
    n = len(blr)
    timestamps = t0 + pd.to_timedelta(np.arange(n) * profile.cadence_seconds, unit="s")
    frame = pd.DataFrame(
        {
            schema.TIMESTAMP: pd.Series(timestamps).dt.floor("ms"),
            schema.BLR: blr,
            schema.BUY_VOLUME: buy,
            schema.SELL_VOLUME: sell,
            schema.MID_PRICE: price,
            schema.ALERT_TRIGGERED: blr < 0.4,
            schema.EPISODE: cat("episode"),
            schema.FAMILY: cat("family"),
            schema.PHASE: cat("phase"),
            schema.CRASH_ONSET: cat("onset"),
        }
    )
    return MarketData(frame=frame, cadence_seconds=profile.cadence_seconds, source=None)
