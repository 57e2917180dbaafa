"""``sentinel relay run | once | status`` and ``sentinel data replay``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sentinel.cli.common import App, emit_json, feed_option

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.relay.multi import MarketRelays


def _overrides(data: Path | None, rpc: str | None, interval: float | None, db: Path | None,
               metrics_port: int | None, confirmations: int | None, attesters: str | None) -> dict[str, Any]:
    return {"relay.attesters": attesters, "data.feed": str(data.absolute()) if data else None, "relay.rpc_url": rpc,
            "relay.interval_seconds": interval, "relay.db": str(db) if db else None,
            "relay.metrics_port": metrics_port, "relay.confirmations": confirmations}


_DATA = feed_option("Feed to follow: a market_depth.csv or a directory of them.", dir_okay=True)
_RPC = click.option("--rpc", default=None, help="JSON-RPC URL  [default: relay.rpc_url, else the deployment's]")
_DB = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                   help="Queue file  [default: .sentinel/relay/queue.sqlite]")
_CONF = click.option("--confirmations", type=int, default=None, help="Blocks before confirmed  [default: 2]")
_ATTESTERS = click.option("--attesters", default=None, metavar="URL,URL,...",
                          help="Attester services to ask for signatures  [default: relay.attesters]")
_MARKET = click.option("--market", "market_name", default=None, metavar="NAME",
                       help="Relay this market only  [default: every [markets.<name>] of sentinel.toml]")


@click.group()
def relay() -> None:
    """The relay daemon: follow a feed, prove each new window, attest, submit, confirm."""


def _start(app: App, data: Path | None, rpc: str | None, interval: float | None, db: Path | None,
           metrics_port: int | None, confirmations: int | None, attesters: str | None,
           market_name: str | None) -> tuple[MarketRelays, SentinelConfig]:
    """A relay per market (or the one named), sharing one queue file, its lock, the signer and the metrics."""
    from sentinel.chain.deploy import load_deployments
    from sentinel.markets import markets, pick
    from sentinel.relay.multi import MarketRelays

    config = app.config(**_overrides(data, rpc, interval, db, metrics_port, confirmations, attesters))
    every = markets(config, app.layout)
    if market_name is not None:
        chosen = pick([m.name for m in every], market_name, "the configuration")
        every = [m for m in every if m.name == chosen]
    if data is not None and len(every) > 1:
        raise click.UsageError(f"--data names one feed and this project guards {len(every)} markets "
                               f"({', '.join(m.name for m in every)}): add --market NAME")
    return MarketRelays.start(app.layout, config, every, load_deployments(app.layout), rpc), config


@relay.command(name="run")
@_DATA
@_RPC
@click.option("--interval", type=float, default=None, help="Seconds between idle passes  [default: 2]")
@_DB
@click.option("--metrics-port", type=int, default=None,
              help="Port of /healthz and /metrics on 127.0.0.1 (0 = off)  [default: 9464]")
@_CONF
@_ATTESTERS
@_MARKET
@click.pass_obj
def run_cmd(app: App, data_path: Path | None, rpc: str | None, interval: float | None, db: Path | None,
            metrics_port: int | None, confirmations: int | None, attesters: str | None,
            market_name: str | None) -> None:
    """Run until SIGTERM/SIGINT (the current step finishes first). Logs one line per event on stderr.

    Every market of sentinel.toml is relayed by this one process, each in its own thread."""
    import logging
    import threading

    from sentinel.relay.daemon import install_signal_handlers
    from sentinel.relay.server import StatusServer

    relays, config = _start(app, data_path, rpc, interval, db, metrics_port, confirmations, attesters, market_name)
    log = logging.getLogger("sentinel.relay")
    stop = threading.Event()
    install_signal_handlers(stop)
    server = None
    try:
        if config.relay.metrics_port:
            server = StatusServer(config.relay.metrics_host, config.relay.metrics_port, relays.metrics,
                                  relays.health).start()
            log.info("event=serving url=http://%s:%d/healthz", config.relay.metrics_host, server.port)
        for relay_ in relays:
            relay_.log.info("event=started data=%s db=%s", relay_.data_path, relay_.queue.path)
        relays.load_provers()
        relays.run(stop)
    finally:
        if server is not None:
            server.stop()
        relays.close()
        log.info("event=stopped")


@relay.command()
@_DATA
@_RPC
@_DB
@_CONF
@_ATTESTERS
@_MARKET
@click.option("--json", "as_json", is_flag=True, help="Print what the pass did as JSON.")
@click.pass_obj
def once(app: App, data_path: Path | None, rpc: str | None, db: Path | None, confirmations: int | None,
         attesters: str | None, market_name: str | None, as_json: bool) -> None:
    """One pass of every market (for cron and tests): ingest, reconcile, prove the newest window, submit."""
    from sentinel.errors import RelayError

    relays, _ = _start(app, data_path, rpc, None, db, None, confirmations, attesters, market_name)
    try:
        results, failures = relays.run_once()
    finally:
        relays.close()
    if len(relays.relays) == 1 and failures:
        raise next(iter(failures.values()))  # one market: its error as it is (its exit code, its hint)
    if as_json:
        one = next(iter(results.values())) if len(relays.relays) == 1 else None
        emit_json(one.to_dict() if one is not None else {name: r.to_dict() for name, r in results.items()})
    else:
        for name, result in results.items():
            prefix = f"{name}: " if len(relays.relays) > 1 else ""
            click.echo(f"{prefix}rows {result.rows}, quarantined {result.quarantined}, enqueued "
                       f"{len(result.enqueued)}, proved {result.proved}, submitted {result.submitted}, confirmed "
                       f"{result.confirmed}, rejected {result.rejected}, skipped {len(result.skipped)}, screened "
                       f"{len(result.screened)}")
    if failures:  # the other markets' passes ran; exit non-zero naming each that failed
        raise RelayError("; ".join(f"market {name}: {error}" for name, error in failures.items()))


@relay.command(name="status")
@_DB
@_MARKET
@click.option("--all", "show_all", is_flag=True, help="List every window, not only the last 20.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status_cmd(app: App, db: Path | None, market_name: str | None, show_all: bool, as_json: bool) -> None:
    """Read the queue: windows per state, the last ones with tx hashes, quarantined rows (per market)."""
    from sentinel.errors import RelayError
    from sentinel.markets import pick
    from sentinel.relay.daemon import status
    from sentinel.relay.queue import Queue

    config = app.config(**{"relay.db": str(db) if db else None})
    path = Path(config.relay.db or app.layout.relay_db)
    if not path.exists():
        raise RelayError(f"{path}: no relay queue yet", hint="run `sentinel relay run` or `sentinel relay once`")
    reports: dict[str, dict[str, Any]] = {}
    queue = Queue.read_only(path)  # beside a running relay: never write, never take its write lock
    try:
        names = queue.markets() or [queue.market]
        for name in [pick(names, market_name, str(path))] if market_name else names:
            view = Queue.read_only(path, market=name)
            try:
                reports[name] = status(view, limit=0 if show_all else 20)
            finally:
                view.close()
    finally:
        queue.close()
    if as_json:
        emit_json(next(iter(reports.values())) if len(reports) == 1 else {"markets": reports})
        return
    for name, report in reports.items():
        _print_status(report, name if len(reports) > 1 else None)


def _print_status(report: dict[str, Any], market: str | None) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items() if v)
    accounted = "every window accounted for" if report["all_accounted"] else f"{report['unfinished']} in progress"
    where = f"{report['db']} [{market}]" if market else report["db"]
    click.echo(f"{where}: {report['total']} windows ({counts or 'none'}); {accounted}")
    for w in report["windows"]:
        extra = w["tx_hash"] or ""
        if w["state"] in ("skipped", "rejected", "failed", "screened"):
            extra = w["reason"] or w["last_error"] or ""
        shown = w["score"] if w["score"] is not None else w["float_score"]  # proven, else the float model's
        score = f"{shown:.4f}" if shown is not None else "-"
        click.echo(f"  window {w['window_id']}  {w['state']:<9} score {score:<6} attempts {w['attempts']}  {extra}")
    for q in report["quarantined"]:
        click.echo(f"  quarantined: {q['source']}, line {q['line']}"
                   + (f", column '{q['column']}'" if q["column"] else "") + f": {q['problem']}")


@click.command(name="replay")
@click.argument("src", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--to", "dst", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Feed file to append to (created with SRC's header).")
@click.option("--rows-per-second", type=float, default=1.0, show_default=True, help="Replay speed.")
@click.option("--rows", "rows", default=None, help="FIRST:LAST data rows of SRC (1-based)  [default: all]")
@click.option("--prefill", type=int, default=0, show_default=True,
              help="Rows before FIRST written at once (a window's worth lets the relay start at once).")
@click.option("--chain-clock", is_flag=True,
              help="Move the local Anvil's clock to each row's time first (demo: the feed is replayed fast).")
@click.option("--rpc", default=None, help="With --chain-clock: JSON-RPC URL  [default: the local Anvil]")
@click.option("--copy", "copies", multiple=True, metavar="PATH[=SOURCE]",
              help="Also append each row to PATH, just before --to gets it (an attester's own copy of the feed); "
                   "with =SOURCE the same row of SOURCE instead (a copy that disagrees). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def replay_cmd(app: App, src: Path, dst: Path, rows_per_second: float, rows: str | None, prefill: int,
               chain_clock: bool, rpc: str | None, copies: tuple[str, ...], as_json: bool) -> None:
    """Append SRC's rows to a feed file one by one, as a live crawler would."""
    from sentinel.chain.deploy import rpc_url
    from sentinel.relay.replay import replay

    first, last = 1, None
    if rows:
        try:
            a, _, b = rows.partition(":")
            first, last = int(a or 1), (int(b) if b else None)
        except ValueError:
            raise click.UsageError(f"--rows '{rows}': expected FIRST:LAST") from None
    url = rpc_url(app.config().chain, rpc) if chain_clock else None
    pairs: list[tuple[Path, Path | None]] = []
    for item in copies:
        path, _, source = item.partition("=")
        if not path:
            raise click.UsageError(f"--copy '{item}': expected PATH or PATH=SOURCE")
        pairs.append((Path(path), Path(source) if source else None))
    result = replay(src, dst, rows_per_second=rows_per_second, first=first, last=last, prefill=prefill,
                    chain_rpc=url, copies=pairs)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"appended {result.rows} rows (lines {result.first_line}..{result.last_line} of {src}) to {dst}"
               + (f"; chain clock at {result.warped_to}" if result.warped_to else ""))
