"""``sentinel bench --markets N --burst``: a market-wide crash through the real relay and chain ("confirmed").

A throwaway project with N markets (``[markets.m0]`` ...), all on the project's own model and circuit (linked),
deployed on a fresh Anvil (127.0.0.1, genesis at the feeds' first row, stopped by pid): a breaker per market.
Each market has two attester parties (``sentinel attester serve --market``, Anvil dev accounts 2 and 3, quorum
2), each following its own copy of the market's feed. One :class:`~sentinel.relay.multi.MarketRelays` runs in
this process with one shared proving executor (``relay.executor``: local or Ray) and ``relay.report = "every"``:
in a market-wide crash every market's every window must be proved and reported (no screening), and a tripped
market's windows go K to a proof as the relay batches them.

The feeds are :func:`sentinel.relay.burst.burst_markets`' aligned drain episodes (every crash onset at minute
``LEAD_MINUTES`` of the run), their rows restamped onto one one-minute grid, so row i of every market and of every
party's copy is appended at the same moment, with the chain's clock moved to that row's time first
(:func:`sentinel.relay.replay.replay`). ``cadence`` wall seconds per market minute compresses time; the JSON says
by how much. Measured from the relay's queue (``seen_at``, ``proved_at``, ``confirmed_at``) and from the chain
(each breaker's Report events and state): windows confirmed and proved per wall minute, arrival -> confirmed
latency, stale/skipped/rejected windows, and per market whether its breaker tripped on chain before the
market's price bottom.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig, load_config
from sentinel.errors import ConfigError
from sentinel.relay.burst import LEAD_MINUTES, BurstMarket, burst_markets, check_sizes, percentile

#: Rows written before the first replayed row: one window's worth, so the relay proves from the first tick.
PREFILL = 50
#: Anvil dev accounts of each market's two attester parties (registered by the local deployment; quorum 2).
PARTIES = (2, 3)
#: Wall seconds every window may take to become final once the feeds have ended.
SETTLE_SECONDS = 900.0
#: Grid start: every market's first row at this unix time (a whole minute), the chain's genesis.
GRID_START = 1_780_000_020


def tick_unix(tick: int) -> int:
    """Chain (and row) time of the end of the window of minute ``tick`` of the run: tick 0's window is the last
    prefilled row, ticks 1.. are replayed."""
    return GRID_START + 60 * (PREFILL - 1 + tick)


def on_grid(rows: list[str], start: float, step: float = 60.0) -> list[str]:
    """Canonical CSV data rows with their timestamps replaced by ``start``, ``start + step``, ... (every market's
    row i at the same time: one grid for all feeds and the chain clock)."""
    def stamp(i: int) -> str:
        return datetime.fromtimestamp(start + step * i, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return [f"{stamp(i)},{row.split(',', 1)[1]}" for i, row in enumerate(rows)]


def market_tables(names: list[str], attesters: dict[str, list[str]] | None = None) -> str:
    """``[markets.<name>]`` tables for sentinel.toml: each market's feed directory ``feeds/<name>`` and, when
    known, its attester services."""
    out = []
    for name in names:
        out.append(f'[markets.{name}]\nfeed = "feeds/{name}"\n')
        if attesters is not None:
            out.append(f"attesters = {json.dumps(attesters[name])}\n")
    return "\n".join(out)


def _source(m: BurstMarket, minutes: int, path: Path) -> None:
    """The market's rows from tick 0's window through tick ``minutes - 1``, on the grid, as a CSV."""
    from sentinel.data.io import market_csv_bytes

    lines = market_csv_bytes(m.market).decode().splitlines()
    first = m.first_row - PREFILL + 1  # 0-based data row of grid row 0
    rows = lines[1:][first:m.first_row + minutes]
    if first < 0 or len(rows) != PREFILL + minutes - 1:
        raise ConfigError(f"bench --burst: market {m.name} (seed {m.seed}) has {len(lines) - 1} rows; --minutes "
                          f"{minutes} runs past its end")
    path.write_text("\n".join([lines[0], *on_grid(rows, GRID_START)]) + "\n")


def _final(queue_path: Path, names: list[str], ticks: int, *, held_ok: bool) -> bool:
    """Every market has queued its window of the last row and every window is final (``held``: waiting for the
    rest of its batch, counts as final when ``held_ok``)."""
    from sentinel.relay.queue import FINAL, WAITING, Queue

    if not queue_path.exists():
        return False
    done = FINAL | WAITING if held_ok else FINAL
    last_end = tick_unix(ticks - 1)
    for name in names:
        view = Queue.read_only(queue_path, market=name)
        try:
            windows = view.windows()
        finally:
            view.close()
        if not windows or max(w.end_unix for w in windows) < last_end or any(w.state not in done for w in windows):
            return False
    return True


def _wait(condition: Any, worker: threading.Thread, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until or not worker.is_alive():
            return False
        time.sleep(0.25)
    return True


def bench_burst_chain(layout: ArtifactLayout, config: SentinelConfig, count: int, minutes: int, cadence: float,
                      progress: Any = None) -> dict[str, Any]:
    """The burst bench through the relay on a throwaway chain (see the module's docstring)."""
    from sentinel.chain import anvil
    from sentinel.chain.deploy import deploy_project
    from sentinel.chain.keys import ANVIL_CHAIN_ID
    from sentinel.markets import markets as market_list
    from sentinel.relay.bench import start_parties, stop_parties
    from sentinel.relay.multi import MarketRelays
    from sentinel.relay.prover import _flat
    from sentinel.relay.replay import replay

    check_sizes(count, minutes, cadence)
    say = progress or (lambda step, detail: None)
    base = {k: v for k, v in _flat(config).items() if not k.startswith("markets.")}
    with tempfile.TemporaryDirectory(prefix="sentinel-burst-chain-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        for part in ("circuits", "models"):
            (root / part).symlink_to(layout.root / part)
        feeds = burst_markets(Path(tmp), layout, count, LEAD_MINUTES)
        names = [f"m{i}" for i in range(count)]
        sources = {}
        for name, m in zip(names, feeds, strict=True):
            sources[name] = Path(tmp) / f"{name}-source.csv"
            _source(m, minutes, sources[name])
        (root / "sentinel.toml").write_text(market_tables(names))
        temp = ArtifactLayout(root)
        port = anvil.free_port()
        url = f"http://127.0.0.1:{port}"
        node = anvil.spawn(port, ANVIL_CHAIN_ID, log=Path(tmp) / "anvil.log", timestamp=GRID_START,
                           deadline_seconds=config.chain.startup_seconds)
        parties: dict[str, list[tuple[subprocess.Popen[bytes], str, Path]]] = {}
        relays: MarketRelays | None = None
        stop = threading.Event()
        worker: threading.Thread | None = None
        try:
            say("burst", f"deploying {count} breakers")
            deployments = deploy_project(temp, load_config(root, base), url, progress)
            for name in names:
                say("burst", f"starting market {name}'s {len(PARTIES)} attester services")
                parties[name] = start_parties(root, url, accounts=PARTIES, market=name)
            tables = {f"markets.{name}": {"feed": f"feeds/{name}", "attesters": [u for _, u, _ in parties[name]]}
                      for name in names}
            relay_config = load_config(root, {
                **base, **tables, "relay.report": "every", "relay.confirmations": 1, "relay.interval_seconds": 0.2,
                "relay.metrics_port": 0, "relay.db": str(root / "queue.sqlite"), "chain.quorum": len(PARTIES)})
            every = market_list(relay_config, temp)
            for guarded in every:  # the feed files come with the replay's first rows; their directories now
                guarded.feed.mkdir(parents=True)
            relays = MarketRelays.start(temp, relay_config, every, deployments, url)
            say("burst", f"warming {len(relays.executor.workers)} provers for {count} markets")
            relays.load_provers()
            batch = relays.relays[0].batch_windows  # 0 when the batch circuit did not load
            worker = threading.Thread(target=relays.run, args=(stop,), name="relays", daemon=True)
            worker.start()
            copies: list[tuple[Path, Path | None]] = []
            for guarded in every:
                copies += [(feed / "market_depth.csv", sources[guarded.name]) for _, _, feed in parties[guarded.name]]
                if guarded.name != names[0]:
                    copies.append((guarded.feed / "market_depth.csv", sources[guarded.name]))
            say("burst", f"replaying {minutes} minutes of {count} markets, one minute every {cadence:g} s")
            load_before = os.getloadavg()[0]
            started = time.time()
            replayed = replay(sources[names[0]], every[0].feed / "market_depth.csv", rows_per_second=1 / cadence,
                              first=PREFILL + 1, last=PREFILL + minutes - 1, prefill=PREFILL, chain_rpc=url,
                              copies=copies)
            queue_file = root / "queue.sqlite"
            settled = _wait(lambda: _final(queue_file, names, minutes, held_ok=True), worker, SETTLE_SECONDS)
            # windows held for a batch when the feeds ended: chain time passes their pairs' due time, proved alone
            due = tick_unix(minutes - 1) + (batch + 1) * 60
            if settled and due > anvil.chain_time(url):
                anvil.warp(url, due)
            settled = settled and _wait(lambda: _final(queue_file, names, minutes, held_ok=False), worker,
                                        SETTLE_SECONDS)
            stop.set()
            worker.join(timeout=600)
            result = _figures(relay_config, url, every, deployments, feeds, queue_file, started, cadence,
                              replayed.appended_at)
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=600)
            if relays is not None:
                relays.close()
            for started_parties in parties.values():
                stop_parties(started_parties)
            anvil.stop_process(node.pid)
    compression = 60.0 / cadence
    return {
        "bench": "burst", "date": dt.date.today().isoformat(),
        "chain": "anvil (127.0.0.1, 1 confirmation): every window proved, attested and reported; confirmed = its "
                 "Report transaction mined",
        "settled": settled,
        "markets": count, "minutes": minutes, "cadence_wall_seconds": cadence,
        "time_compression": f"{compression:g}x: one market minute every {cadence:g} wall seconds, the chain clock "
                            "following each row",
        "crash": f"every market's drain crash onset at minute {LEAD_MINUTES} of the run",
        "report": "every: in a market-wide crash every window of every market is proved and reported; "
                  + (f"a tripped market's windows go {batch} to a proof" if batch else "each alone (no batch circuit)"),
        "attesters": f"{len(PARTIES)} services per market, quorum {len(PARTIES)}",
        "executor": config.relay.executor, "ray_address": config.relay.ray_address or None,
        "machine_cores": os.cpu_count(),
        # others' work on the same cores shows here: the bench does not run alone on a shared machine
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}, **result,
    }


def _figures(config: SentinelConfig, rpc: str, every: list[Any], deployments: Any, feeds: list[BurstMarket],
             queue_file: Path, started: float, cadence: float, appended_at: dict[int, float]) -> dict[str, Any]:
    """The run's figures from the queue and the chain.

    A breaker's ``trippedAt`` is chain time: it follows the rows while they are replayed, but once the feeds have
    ended Anvil's clock runs at wall speed, so a trip confirmed late (a backlog) looks earlier in chain time than
    it would at the run's pace. Each trip is therefore also placed at the run's pace: the market minute at which
    its Report was confirmed (wall time since the first replayed row, tick 1, over ``cadence``)."""
    from sentinel.chain.breaker import BREAKER, breaker_state, connect, contract
    from sentinel.relay.queue import Queue

    windows = []
    per_market = []
    for m, feed in zip(every, feeds, strict=True):
        view = Queue.read_only(queue_file, market=m.name)
        try:
            own = view.windows()
        finally:
            view.close()
        windows += own
        deployment = deployments.market(m.name)
        chain = connect(deployment, config, rpc)
        breaker = contract(chain, deployment, BREAKER)
        reports = breaker.events.Report().get_logs(from_block=deployment.block)
        state = breaker_state(chain, breaker)
        bottom_unix = tick_unix(feed.bottom_tick)
        tripped_at = state["tripped_at"]
        states: dict[str, int] = {}
        for w in own:
            states[w.state] = states.get(w.state, 0) + 1
        trips = sorted((w for w in own if w.tripped and w.confirmed_at is not None), key=lambda w: w.confirmed_at or 0)
        paced = None if not trips else 1 + ((trips[0].confirmed_at or 0) - started) / cadence
        per_market.append({
            "market": m.name, "seed": feed.seed, "onset_minute": feed.onset_tick, "bottom_minute": feed.bottom_tick,
            "windows": states, "reports_on_chain": len(reports),
            "reported_windows_on_chain": len({int(e["args"]["windowId"]) for e in reports}),
            "tripped_on_chain": state["tripped"],
            "tripped_at_minute": None if tripped_at is None else round((tripped_at - tick_unix(0)) / 60, 2),
            "tripped_before_bottom": tripped_at is not None and tripped_at < bottom_unix,
            "lead_minutes": None if tripped_at is None else round((bottom_unix - tripped_at) / 60, 2),
            "trip_window_minute": None if not trips else (trips[0].end_unix - tick_unix(0)) // 60,
            "trip_confirmed_minute_at_run_pace": _r(paced),
            "tripped_before_bottom_at_run_pace": paced is not None and paced < feed.bottom_tick})
    confirmed = [w for w in windows if w.state == "confirmed" and w.confirmed_at is not None]
    proved = [w for w in windows if w.proved_at is not None]
    end = max((w.confirmed_at for w in confirmed if w.confirmed_at is not None), default=started)
    span = max(end - started, 1e-9)
    seen = [w.confirmed_at - w.seen_at for w in confirmed if w.confirmed_at is not None]
    appended = [w.confirmed_at - appended_at[w.end_unix] for w in confirmed
                if w.confirmed_at is not None and w.end_unix in appended_at]
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.state] = counts.get(w.state, 0) + 1

    def stat(values: list[float]) -> dict[str, Any]:
        return {"p50": _r(percentile(values, 0.5)), "p95": _r(percentile(values, 0.95)),
                "max": _r(max(values) if values else None), "n": len(values)}

    prove = [w.prove_seconds for w in windows if w.prove_seconds]
    return {
        "windows": len(windows), "states": counts, "confirmed": len(confirmed), "proved": len(proved),
        "proofs": len({(w.batch_of or w.window_id, w.bundle) for w in proved}),
        "stale": sum(1 for w in windows if w.state == "skipped" and "stale" in (w.reason or "")),
        "skipped": counts.get("skipped", 0), "rejected": counts.get("rejected", 0),
        "failed": counts.get("failed", 0),
        "reports_on_chain": sum(p["reports_on_chain"] for p in per_market),
        "wall_seconds": round(span, 1),
        "windows_confirmed_per_wall_minute": round(len(confirmed) / (span / 60), 2),
        "windows_proved_per_wall_minute": round(len(proved) / (span / 60), 2),
        "latency_seen_to_confirmed_wall_seconds": stat(seen),
        "latency_row_appended_to_confirmed_wall_seconds": stat(appended),
        "prove_seconds_median": _r(percentile(prove, 0.5)),
        "tripped_on_chain": sum(1 for p in per_market if p["tripped_on_chain"]),
        "tripped_before_bottom": sum(1 for p in per_market if p["tripped_before_bottom"]),
        "tripped_before_bottom_at_run_pace": sum(1 for p in per_market if p["tripped_before_bottom_at_run_pace"]),
        "per_market": per_market,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
