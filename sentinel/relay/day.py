"""``sentinel bench --day``: what a protected market-day costs, measured in both reporting policies.

One feed, by default one day at the seed's one-minute cadence: calm market
with hard negatives (liquidity dips and depth spikes that are no crash) and,
near its end, exactly one liquidity drain, through its price bottom and a few
rows after. It is replayed twice, each time into a fresh chain, deployment,
three attester services and relay (:func:`sentinel.relay.bench.relay_rig`),
once with ``relay.report = every`` and once with ``risk``. The replay runs in
lockstep with the relay: after each row the bench waits until the relay has
queued that row's window and every window is final (screened, confirmed, ...).
Time is compressed only as far as the relay's own speed allows, no window goes
stale, and both modes see the same windows at the same chain times.

Measured per mode: transactions and their gas (the receipts), proofs and
their time, the window whose Report tripped the breaker and its lead to the
price bottom. Costs in ETH and USD use the gas and ETH prices of
:data:`ASSUMPTIONS`: stated assumptions, not measurements.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import DataError, RelayError

if TYPE_CHECKING:
    import pandas as pd

    from sentinel.artifacts import ArtifactLayout
    from sentinel.config import SentinelConfig

#: Fewest rows the bench takes: the drain episode (:data:`DRAIN_SEED`, 183 rows with its tail) and calm rows before it.
MIN_ROWS = 240
#: Seed of the hard-negative stream (dips and spikes): the first seed tried.
NEGATIVES_SEED = 1
#: Seed of the drain episode: of seeds 0-29 the one with the fewest rows through its price bottom (172), so the crash
#: fits in :data:`MIN_ROWS`. The float model trips on it 35 rows before the bottom.
DRAIN_SEED = 25
#: Rows kept after the price bottom: the feed ends with the crash.
TAIL_ROWS = 10
#: Target of issue 20: risk mode's gas on the healthy part of the day at most this share of every mode's.
HEALTHY_TARGET = 0.02
#: Each row's window must be final within this many seconds (one proof and one transaction take seconds).
SETTLE_SECONDS = 600.0
#: The replay's top speed; lockstep with the relay sets the real pace.
LOCKSTEP_ROWS_PER_SECOND = 100.0
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class CostAssumptions:
    """The prices a day's gas is costed at: assumptions, printed with every result, not measurements."""

    mainnet_gwei: float = 10.0
    l2_gwei: float = 0.01
    eth_usd: float = 3000.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": "assumed prices, not measured. The L2 price covers execution gas only: what an "
                                        "L2 charges for posting each submit's calldata (about 3.6 KB) to L1 is not "
                                        "included"}


ASSUMPTIONS = CostAssumptions()


@dataclass(frozen=True)
class DayFeed:
    """The day's feed file and where its crash is (rows are 1-based data rows)."""

    path: Path
    rows: int
    cadence_seconds: float
    first_unix: int
    drain_first_row: int  #: first row of the drain episode (its calm lead-in, then stress, then the crash)
    onset_row: int  #: the drain's crash onset
    bottom_row: int  #: lowest mid price of the crash phase
    hard_negatives: int  #: dips and spikes with rows in the feed
    drain_seed: int = DRAIN_SEED
    negatives_seed: int = NEGATIVES_SEED

    def row_of(self, unix: int) -> int:
        """The row stamped at Unix second ``unix``."""
        return round((unix - self.first_unix) / self.cadence_seconds) + 1

    def to_dict(self) -> dict[str, Any]:
        def stamp(row: int) -> str:
            unix = self.first_unix + (row - 1) * self.cadence_seconds
            return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        return {"family": "drain", "drain_seed": self.drain_seed, "negatives_seed": self.negatives_seed,
                "drain_first_row": self.drain_first_row, "onset_row": self.onset_row,
                "onset_time": stamp(self.onset_row),
                "bottom_row": self.bottom_row, "bottom_time": stamp(self.bottom_row),
                "rows_after_bottom": self.rows - self.bottom_row, "hard_negatives": self.hard_negatives,
                "cadence_seconds": self.cadence_seconds}


def _crash_rows(frame: pd.DataFrame) -> tuple[int, int]:
    """0-based rows of the one crash onset and of the lowest mid price in the crash phase."""
    import numpy as np

    from sentinel.data import schema

    onsets = np.flatnonzero(frame[schema.CRASH_ONSET].to_numpy() == 1)
    if len(onsets) != 1:
        raise DataError(f"day feed: {len(onsets)} crash onsets, expected exactly one")
    crash = np.flatnonzero(frame[schema.PHASE].to_numpy() == schema.CRASH)
    return int(onsets[0]), int(crash[np.argmin(frame[schema.MID_PRICE].to_numpy()[crash])])


def build_day_feed(rows: int, path: Path, *, negatives_seed: int = NEGATIVES_SEED,
                   drain_seed: int = DRAIN_SEED) -> DayFeed:
    """Write the day's feed to ``path`` (canonical CSV, validated): ``rows`` rows, one drain crash near the end.

    The calm part is the tail of a stream of hard-negative episodes (its last dip or spike lands in even a short
    feed); the drain episode follows it without a gap, cut :data:`TAIL_ROWS` rows after its price bottom.
    """
    import pandas as pd

    from sentinel.data import schema
    from sentinel.data.io import read_market_csv, write_market_csv
    from sentinel.data.synthetic import DEFAULT_START, MarketProfile, generate

    if rows < MIN_ROWS:
        raise DataError(f"--rows {rows}: the day bench needs at least {MIN_ROWS} rows (a drain crash and calm "
                        "windows before it)")
    drain = generate(1, drain_seed, families=[schema.DRAIN]).frame
    keep = min(len(drain), _crash_rows(drain)[1] + 1 + TAIL_ROWS)
    if keep > rows:
        raise DataError(f"--rows {rows}: the drain episode (seed {drain_seed}) takes {keep} rows through its price "
                        f"bottom and {TAIL_ROWS} after; it does not fit")
    cadence = pd.Timedelta(seconds=MarketProfile().cadence_seconds)
    start = pd.Timestamp(DEFAULT_START)
    calm = rows - keep
    parts = []
    if calm:
        # every episode opens with at least 120 calm rows, so calm // 120 + 2 episodes hold more than `calm` rows
        negatives = generate(calm // 120 + 2, negatives_seed, families=list(schema.HARD_NEGATIVE_FAMILIES)).frame
        tail = negatives.iloc[len(negatives) - calm:].reset_index(drop=True)
        tail[schema.TIMESTAMP] = tail[schema.TIMESTAMP] - tail[schema.TIMESTAMP].iloc[0] + start
        tail[schema.EPISODE] = tail[schema.EPISODE] - tail[schema.EPISODE].iloc[0]
        parts.append(tail)
    drain_start = (start + calm * cadence).strftime("%Y-%m-%dT%H:%M:%SZ")
    drain = generate(1, drain_seed, families=[schema.DRAIN], start=drain_start).frame.iloc[:keep].copy()
    drain[schema.EPISODE] = int(parts[0][schema.EPISODE].iloc[-1]) + 1 if parts else 0
    write_market_csv(pd.concat([*parts, drain], ignore_index=True), path)
    market = read_market_csv(path)  # the concatenation validated: order, cadence, values
    frame = market.frame
    onset, bottom = _crash_rows(frame)
    events = frame.loc[frame[schema.PHASE].isin(schema.HARD_NEGATIVE_FAMILIES), schema.EPISODE]
    return DayFeed(path=Path(path), rows=len(frame), cadence_seconds=market.cadence_seconds,
                   first_unix=int(market.timestamps_unix()[0]), drain_first_row=calm + 1, onset_row=onset + 1,
                   bottom_row=bottom + 1, hard_negatives=int(events.nunique()), drain_seed=drain_seed,
                   negatives_seed=negatives_seed)


@dataclass(frozen=True)
class WindowRecord:
    """One window of a mode's run as the bench counts it."""

    window_id: int
    end_row: int
    state: str
    gas_used: int  #: gas of its mined transactions (their receipts)
    prove_seconds: float | None  #: None: not proved (a batch's window: its share of the batch proof)
    tripped: bool  #: its Report event said the breaker is tripped
    batch_of: int | None = None  #: the batch proof it was in (its newest window), if any


@dataclass(frozen=True)
class ModeRun:
    """What one mode's run measured."""

    mode: str
    windows: tuple[WindowRecord, ...]
    transactions: int  #: the relay's mined transactions
    wall_seconds: float  #: chain, deployment, services, prover start, replay and teardown
    replay_seconds: float
    prover_cpu_seconds: float | None  #: None: not measurable (no /proc, or the prover was restarted)


def day_cost(gas: int, assumptions: CostAssumptions = ASSUMPTIONS) -> dict[str, dict[str, float]]:
    """ETH and USD of ``gas`` on mainnet and on an L2 at the assumed prices."""
    out = {}
    for chain, gwei in (("mainnet", assumptions.mainnet_gwei), ("l2", assumptions.l2_gwei)):
        eth = gas * gwei * 1e-9
        out[chain] = {"gas_price_gwei": gwei, "eth": round(eth, 8), "usd": round(eth * assumptions.eth_usd, 2)}
    return out


def mode_figures(run: ModeRun, feed: DayFeed, assumptions: CostAssumptions = ASSUMPTIONS) -> dict[str, Any]:
    """A mode's figures; per market-day figures scale the measured rows linearly to a day's rows."""
    scale = SECONDS_PER_DAY / feed.cadence_seconds / feed.rows
    gas = sum(w.gas_used for w in run.windows)
    per_day = round(gas * scale)
    proved = [w.prove_seconds for w in run.windows if w.prove_seconds is not None]
    proofs = {w.window_id if w.batch_of is None else w.batch_of for w in run.windows if w.prove_seconds is not None}
    trip = next((w for w in run.windows if w.tripped), None)
    healthy = [w for w in run.windows if w.end_row < feed.onset_row]
    return {
        "windows": dict(sorted(Counter(w.state for w in run.windows).items())),
        "transactions": run.transactions,
        "gas_total": gas,
        "gas_per_market_day_scaled": per_day,
        "proofs": len(proofs),
        "windows_proved": len(proved),
        "windows_in_batch_proofs": sum(1 for w in run.windows
                                       if w.batch_of is not None and w.prove_seconds is not None),
        "prove_seconds_total": round(math.fsum(proved), 1),
        "prover_cpu_seconds": None if run.prover_cpu_seconds is None else round(run.prover_cpu_seconds, 1),
        "tripped_at": None if trip is None else {
            "window": trip.window_id, "end_row": trip.end_row, "lead_rows": feed.bottom_row - trip.end_row,
            "lead_minutes": round((feed.bottom_row - trip.end_row) * feed.cadence_seconds / 60, 1)},
        "healthy_part": {"windows": len(healthy), "gas": sum(w.gas_used for w in healthy),
                         "proofs": sum(1 for w in healthy if w.prove_seconds is not None)},
        "cost_per_market_day_scaled": day_cost(per_day, assumptions),
        "wall_seconds": round(run.wall_seconds, 1),
        "replay_seconds": round(run.replay_seconds, 1),
    }


def trip_text(mode: dict[str, Any]) -> str:
    """Where a mode's figures say the breaker tripped, for tables (the CLI's and the docs')."""
    t = mode["tripped_at"]
    return "no trip" if t is None else f"{t['window']} (row {t['end_row']})"


def lead_text(mode: dict[str, Any]) -> str:
    """A mode's lead from its trip to the price bottom, for tables."""
    t = mode["tripped_at"]
    return "-" if t is None else f"{t['lead_rows']} rows, {t['lead_minutes']:g} min"


def cost_text(mode: dict[str, Any], chain: str) -> str:
    """A mode's scaled market-day cost on ``chain`` ("mainnet" or "l2"), for tables."""
    c = mode["cost_per_market_day_scaled"][chain]
    return f"{c['eth']:.6f} ETH (${c['usd']:,.2f})"


def healthy_part(every: dict[str, Any], risk: dict[str, Any]) -> dict[str, Any]:
    """The two modes on the windows ending before the crash onset, and whether they tripped at the same window."""
    gas_every, gas_risk = every["healthy_part"]["gas"], risk["healthy_part"]["gas"]
    ratio = gas_risk / gas_every if gas_every else None
    trips = [m["tripped_at"]["window"] if m["tripped_at"] else None for m in (every, risk)]
    return {"windows": every["healthy_part"]["windows"], "gas_every": gas_every, "gas_risk": gas_risk,
            "risk_over_every": None if ratio is None else round(ratio, 6), "target": HEALTHY_TARGET,
            "within_target": ratio is not None and ratio <= HEALTHY_TARGET,
            "same_trip_window": trips[0] is not None and trips[0] == trips[1]}


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, all its threads (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def _cpus(pids: list[int]) -> float | None:
    """CPU seconds of the prover processes ``pids`` together, or None if one cannot be read."""
    seconds = [_cpu_seconds(pid) for pid in pids]
    return None if any(s is None for s in seconds) else sum(s for s in seconds if s is not None)


def run_mode(layout: ArtifactLayout, config: SentinelConfig, feed: DayFeed, mode: str,
             progress: Any = None) -> tuple[ModeRun, dict[str, Any]]:
    """Replay the day into a fresh relay in ``mode``, in lockstep; returns the run and the relay's setup."""
    from sentinel.chain import anvil
    from sentinel.data.windows import window_id
    from sentinel.relay.bench import relay_rig
    from sentinel.relay.replay import replay

    say = progress or (lambda step, detail: None)
    started = time.monotonic()
    with relay_rig(layout, config, feed.first_unix, {"relay.report": mode}, progress) as rig:
        relay = rig.relay
        cpu_before = _cpus(relay.executor.pids())

        def lockstep(row: int, unix: float) -> None:
            wid = window_id(math.floor(unix), relay.cadence)
            if not rig.wait_settled(through=wid, deadline_seconds=SETTLE_SECONDS):
                raise RelayError(f"bench --day ({mode}): window {wid} (row {row}) is not final after "
                                 f"{SETTLE_SECONDS:g} s; the relay's last error: {relay.last_error or 'none'}")
            if row % 60 == 0 or row == feed.rows:
                counts = ", ".join(f"{state} {n}" for state, n in rig.view.counts().items() if n)
                say("day", f"{mode}: row {row}/{feed.rows}; windows: {counts}")

        say("day", f"{mode}: replaying {feed.rows} rows in lockstep with the relay")
        replay_started = time.monotonic()
        replay(feed.path, rig.feed, rows_per_second=LOCKSTEP_ROWS_PER_SECOND, first=relay.window,
               prefill=relay.window - 1, chain_rpc=rig.rpc, on_row=lockstep, copies=rig.copies)
        if not rig.flush_held(SETTLE_SECONDS):
            raise RelayError(f"bench --day ({mode}): windows held for a batch are not final {SETTLE_SECONDS:g} s "
                             f"after the feed ended; the relay's last error: {relay.last_error or 'none'}")
        replay_seconds = time.monotonic() - replay_started
        rig.halt()
        cpu_after = _cpus(relay.executor.pids()) if relay.executor.restarts == 0 else None
        gas: Counter[int] = Counter()
        mined = 0
        for tx in relay.queue.all_txs():
            receipt = anvil.rpc(rig.rpc, "eth_getTransactionReceipt", [tx.tx_hash])
            if receipt is not None:
                gas[tx.window_id] += int(receipt["gasUsed"], 16)
                mined += 1
        windows = tuple(WindowRecord(w.window_id, feed.row_of(w.end_unix), w.state, gas[w.window_id],
                                     w.prove_seconds, bool(w.tripped), w.batch_of) for w in relay.queue.windows())
        setup = {"report": mode, "risk_margin": round(relay.margin, 6) if mode == "risk" else None,
                 "heartbeat_windows": relay.rc.heartbeat_windows, "confirmations": relay.rc.confirmations,
                 "breaker_policy": {k: relay.deployment.policy[k] for k in (
                     "trip_threshold", "trip_after", "reset_threshold", "reset_after", "max_age_seconds", "quorum",
                     "source")}}
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return ModeRun(mode, windows, mined, time.monotonic() - started, replay_seconds, cpu), setup


def bench_day(layout: ArtifactLayout, config: SentinelConfig, rows: int = 1440, progress: Any = None,
              assumptions: CostAssumptions = ASSUMPTIONS) -> dict[str, Any]:
    """Build the day's feed, run it through the relay in ``every`` and in ``risk`` mode, and report both."""
    say = progress or (lambda step, detail: None)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-day-") as tmp:
        feed = build_day_feed(rows, Path(tmp) / "day.csv")
        say("day", f"{feed.rows} rows, hard negatives {feed.hard_negatives}, drain onset row {feed.onset_row}, "
                   f"price bottom row {feed.bottom_row}")
        runs, setups = {}, {}
        for mode in ("every", "risk"):
            runs[mode], setups[mode] = run_mode(layout, config, feed, mode, progress)
    modes = {mode: mode_figures(run, feed, assumptions) for mode, run in runs.items()}
    return {
        "rows": feed.rows,
        "crash": feed.to_dict(),
        "modes": modes,
        "healthy_part": healthy_part(modes["every"], modes["risk"]),
        "assumptions": assumptions.to_dict(),
        "setup": {
            "relay": {mode: {k: v for k, v in s.items() if k != "breaker_policy"} for mode, s in setups.items()},
            "breaker_policy": setups["every"]["breaker_policy"],
            "attesters": "3 services, 2 of 3 signatures",
            "lockstep": "after each row, the bench waits until the relay has queued its window and every window is "
                        "final",
            "per_market_day": f"scaled: measured x {SECONDS_PER_DAY / feed.cadence_seconds:g} / rows; with fewer "
                              "rows than a day the crash's share is scaled up with the rest",
            "prove_seconds": "wall time of witness + proof in the relay's prover process, summed over proofs",
            "prover_cpu_seconds": "user + system CPU time of the prover process (all its threads) over the replay",
        },
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count()},
    }
