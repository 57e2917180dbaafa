"""``sentinel bench --markets N --burst``: N markets crashing in the same minute, proved through one executor.

Each market is a synthetic liquidity-drain feed (its own seed); the feeds are aligned so that every crash
onset falls on the same tick. Each tick (``cadence`` wall seconds for one market minute: ``--cadence`` below
60 compresses time, and the JSON says by how much) every market's newest window arrives and goes to the
executor with its deadline (the window's end plus the breaker's max age, less inclusion, compressed alike).
Measured: windows proved per minute, arrival -> proved latency, stale drops, and per market whether the
breaker's rule (:func:`sentinel.model.policy.trip_steps`, the contract's rule) on the proven scores trips
before the price bottom, the trip taken at window end + measured latency.

There is no chain here: "proved", not "confirmed". Windows are proved one by one (no K-window batches).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig
from sentinel.errors import ConfigError
from sentinel.relay.executor import ProofJob, ProofOutcome, ProvingExecutor

#: Market minutes replayed before the common crash onset. The default model's float scores trip 7-32 minutes after
#: the onset on the bench's seeds (100-107), 28-66 minutes before their price bottoms.
LEAD_MINUTES = 2


@dataclass(frozen=True)
class BurstMarket:
    """One market's feed and where its crash is, in ticks of the run (tick 0: the first window replayed)."""

    name: str
    seed: int
    root: Path
    market: Any  #: MarketData of the whole drain episode
    first_row: int  #: 0-based end row of the window replayed at tick 0
    onset_tick: int
    bottom_tick: int


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def burst_markets(base: Path, layout: ArtifactLayout, count: int, lead: int, seed: int = 100) -> list[BurstMarket]:
    """``count`` drain feeds (seeds ``seed``, ``seed``+1, ...), each in its own project root linking the project's
    circuit and model, aligned so every crash onset is tick ``lead``."""
    from sentinel.data import schema
    from sentinel.data.synthetic import generate
    from sentinel.relay.day import _crash_rows

    markets = []
    for i in range(count):
        market = generate(1, seed + i, families=[schema.DRAIN])
        onset, bottom = _crash_rows(market.frame)
        root = base / f"market-{i}"
        root.mkdir()
        for part in ("circuits", "models"):
            (root / part).symlink_to(layout.root / part)
        first = onset - lead
        markets.append(BurstMarket(f"market-{i}", seed + i, root, market, first, lead, bottom - first))
    return markets


def trip_tick(scores: dict[int, float], ticks: int, threshold: float, trip_after: int) -> int | None:
    """The tick of the window that trips the breaker on the proven ``scores`` (tick -> score; a tick with no proof
    breaks the streak, as a gap does on chain), or None."""
    import math

    import numpy as np

    from sentinel.model.policy import TripPolicy, trip_steps

    series = np.array([scores.get(t, math.nan) for t in range(ticks)])  # NaN never reaches the threshold
    steps = trip_steps(series, TripPolicy(threshold, 0.0, trip_after, 1))
    return int(steps[0]) if len(steps) else None


def run_burst(executor: ProvingExecutor, config: SentinelConfig, markets: list[BurstMarket], minutes: int,
              cadence: float, progress: Any = None) -> dict[str, Any]:
    """Replay ``minutes`` ticks of every market into ``executor``, one window per market per tick; the figures."""
    from sentinel.relay.daemon import INCLUSION_MARGIN_SECONDS
    from sentinel.relay.prover import _flat

    say = progress or (lambda step, detail: None)
    compression = 60.0 / cadence
    max_age = config.chain.max_age_seconds
    flat = _flat(config)
    say("burst", f"warming {len(executor.workers)} workers for {len(markets)} markets")
    for m in markets:
        executor.warm(str(m.root), flat)
    outcomes: list[ProofOutcome] = []
    submitted = 0
    load_before = os.getloadavg()[0]
    start = time.time()
    for tick in range(minutes):
        at = start + tick * cadence
        while time.time() < at:
            outcomes.extend(executor.poll(min(1.0, max(0.0, at - time.time()))))
        now = time.time()
        for m in markets:
            deadline = now + (max_age - INCLUSION_MARGIN_SECONDS) / compression
            executor.submit(ProofJob((m.name, tick), str(m.root), flat, m.market, (m.first_row + tick,), deadline, now))
            submitted += 1
        done = sum(1 for o in outcomes if o.status == "ok")
        say("burst", f"tick {tick + 1}/{minutes}: {submitted} windows in, {done} proved, "
                     f"{len(executor.in_flight())} in flight")
    while len(outcomes) < submitted:
        outcomes.extend(executor.poll(1.0))
    wall = max(o.finished for o in outcomes) - start
    result = figures(config, markets, outcomes, minutes, cadence, wall, executor)
    # others' work on the same cores shows here: the bench does not run alone on a shared machine
    result["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return result


def figures(config: SentinelConfig, markets: list[BurstMarket], outcomes: list[ProofOutcome], minutes: int,
            cadence: float, wall: float, executor: ProvingExecutor) -> dict[str, Any]:
    """The bench's JSON from its outcomes."""
    from sentinel.chain.deploy import resolve_policy
    from sentinel.model.pipeline import load_card

    compression = 60.0 / cadence
    root = markets[0].root
    policy = resolve_policy(config.chain, load_card(ArtifactLayout(root)))
    ok = [o for o in outcomes if o.status == "ok"]
    latency = [o.latency for o in ok]
    prove = [float(o.result.prove_seconds) for o in ok]
    per_market = []
    for m in markets:
        scores = {o.key[1]: float(o.result.score) for o in ok if o.key[0] == m.name}
        tick = trip_tick(scores, minutes, policy.trip_threshold, policy.trip_after)
        trip_at = None
        if tick is not None:
            lat = next(o.latency for o in ok if o.key == (m.name, tick))
            trip_at = tick * 60 + lat * compression  # market seconds after tick 0's window end
        per_market.append({
            "market": m.name, "seed": m.seed, "onset_minute": m.onset_tick, "bottom_minute": m.bottom_tick,
            "proved": len(scores), "trip_window_minute": tick,
            "trip_minute": None if trip_at is None else round(trip_at / 60, 2),
            "tripped_before_bottom": trip_at is not None and trip_at < m.bottom_tick * 60,
            "lead_minutes": None if trip_at is None else round(m.bottom_tick - trip_at / 60, 2)})
    counts: dict[str, int] = {}
    nodes: dict[str, int] = {}
    for o in ok:
        counts[o.worker or "-"] = counts.get(o.worker or "-", 0) + 1
        if o.node:
            nodes[o.node] = nodes.get(o.node, 0) + 1

    def stat(values: list[float]) -> dict[str, float | None]:
        return {"p50": _r(percentile(values, 0.5)), "p95": _r(percentile(values, 0.95)), "max": _r(max(values or [0]))}

    return {
        "bench": "burst", "date": dt.date.today().isoformat(),
        "chain": ("none (--no-chain): windows are proved, not confirmed; without --no-chain the bench confirms them "
                  "through the relay on Anvil"),
        "markets": len(markets), "minutes": minutes, "cadence_wall_seconds": cadence,
        "time_compression": f"{compression:g}x: one market minute every {cadence:g} wall seconds",
        "crash": f"every market's drain crash onset at minute {markets[0].onset_tick} of the run",
        "machine_cores": os.cpu_count(), "workers": list(executor.workers), "workers_count": len(executor.workers),
        "windows": len(outcomes), "proved": len(ok),
        "stale": sum(1 for o in outcomes if o.status == "stale"),
        "errors": sum(1 for o in outcomes if o.status == "error"),
        "retried": sum(1 for o in outcomes if o.attempts > 1),
        "wall_seconds": round(wall, 1),
        "windows_proved_per_wall_minute": round(len(ok) / (wall / 60), 2),
        "latency_arrival_to_proved_wall_seconds": stat(latency),
        "prove_seconds": {"median": _r(statistics.median(prove) if prove else None), "mean": _r(
            statistics.fmean(prove) if prove else None)},
        "per_worker": counts, "per_node": nodes,
        "breaker_rule": {"trip_threshold": policy.trip_threshold, "trip_after": policy.trip_after,
                         "source": policy.source},
        "tripped_before_bottom": sum(1 for p in per_market if p["tripped_before_bottom"]),
        "per_market": per_market,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def check_sizes(markets: int, minutes: int, cadence: float) -> None:
    """ConfigError unless the run's sizes make sense (both burst modes)."""
    if markets < 1 or minutes < 1 or cadence <= 0:
        raise ConfigError(f"bench --burst: --markets ({markets}) and --minutes ({minutes}) must be >= 1 and "
                          f"--cadence ({cadence:g}) > 0")
    if minutes <= LEAD_MINUTES:
        raise ConfigError(f"bench --burst: --minutes {minutes} ends before the crash onset at minute {LEAD_MINUTES}")


def bench_burst(layout: ArtifactLayout, config: SentinelConfig, markets: int, minutes: int, cadence: float,
                progress: Any = None) -> dict[str, Any]:
    """The burst bench on ``config``'s executor (relay.executor, relay.ray_address...)."""
    from sentinel.relay.executor import make_executor

    check_sizes(markets, minutes, cadence)
    with tempfile.TemporaryDirectory(prefix="sentinel-burst-") as tmp:
        feeds = burst_markets(Path(tmp), layout, markets, LEAD_MINUTES)
        executor = make_executor(config)
        try:
            result = run_burst(executor, config, feeds, minutes, cadence, progress)
        finally:
            executor.close()
    result["executor"] = config.relay.executor
    result["ray_address"] = config.relay.ray_address or None
    result["prover_threads"] = getattr(executor, "threads", None)
    return result
