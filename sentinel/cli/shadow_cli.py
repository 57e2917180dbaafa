"""``sentinel shadow report | check``: what candidate versions would have done on the live feed, and whether one
may be promoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sentinel.cli.common import App, emit_json, verdict

_DB = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                   help="Queue file  [default: relay.db, else .sentinel/relay/queue.sqlite]")
_MARKET = click.option("--market", "market_name", default=None, metavar="NAME",
                       help="This market only  [default: every market with shadow scores]")


@click.group()
def shadow() -> None:
    """Shadow scoring: candidate versions float-scored by the relay beside production (lifecycle.shadow)."""


def _signed(value: int, unit: str) -> str:
    return f"{value:+d} {unit}"


def _report_lines(market: str, r: dict[str, Any]) -> list[str]:
    policy = r["policy"]
    prods = ", ".join(r["production_versions"])
    prod_thresholds = ", ".join(f"{p['trip_threshold']:g}" for p in r["production_policies"].values())
    above = r["above_threshold"]
    trips = r["trips"]
    lines = [f"market {market}: candidate {r['version']} beside production {prods}",
             f"  windows scored: {r['windows']} ({r['first_window_end']} to {r['last_window_end']})",
             (f"  above own trip threshold: candidate {above['candidate']} (>= {policy['trip_threshold']:g}, trip "
              f"after {policy['trip_after']}), production {above['production']} (>= {prod_thresholds})"),
             (f"  trips: candidate {len(trips['candidate'])}, production {len(trips['production'])}; "
              f"extra {r['extra_trips']}, missed {r['missed_trips']} (within {r['horizon_windows']} windows)")]
    for t in trips["candidate"]:
        if t["production_window_id"] is None:
            lines.append(f"    candidate trip at window {t['window_id']} ({t['end']}): production never tripped "
                         "(extra)")
        else:
            lines.append(f"    candidate trip at window {t['window_id']} ({t['end']}): production's nearest at "
                         f"window {t['production_window_id']}, {_signed(t['windows'], 'windows')} "
                         f"({_signed(t['seconds'], 's')})" + (" (extra)" if t["extra"] else ""))
    for p in trips["production"]:
        if p["missed"]:
            lines.append(f"    production trip at window {p['window_id']} ({p['end']}): missed by the candidate")
    ft = r["false_trips"]
    rate = "-" if ft["per_10k"] is None else f"{ft['per_10k']:.2f} per 10k [{ft['ci95'][0]:.2f}, {ft['ci95'][1]:.2f}]"
    lines.append(f"  false trips on healthy stretches: {ft['count']} in {ft['healthy_windows']} windows = {rate} "
                 "(exact Poisson 95 %)")
    return lines


@shadow.command("report")
@_MARKET
@click.option("--version", "version", default=None, metavar="V", help="This candidate only (id or prefix).")
@_DB
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"markets": {name: [one report per candidate]}}.')
@click.pass_obj
def report_cmd(app: App, market_name: str | None, version: str | None, db: Path | None, as_json: bool) -> None:
    """What each candidate would have done on the live feed: windows scored, windows above threshold, trips matched
    to production's (extra, missed), false trips on the healthy stretches."""
    from sentinel.lifecycle.shadow import shadow_report

    report = shadow_report(app.layout, app.config(), market=market_name, version=version, db=db)
    if as_json:
        emit_json(report)
        return
    if not any(report["markets"].values()):
        click.echo("no shadow scores yet (set lifecycle.shadow and run the relay)")
        return
    for market, candidates in report["markets"].items():
        for r in candidates:
            for line in _report_lines(market, r):
                click.echo(line)


@verdict("every promotion criterion holds", "a criterion fails")
@shadow.command("check")
@click.option("--version", "version", required=True, metavar="V", help="The candidate (id or prefix).")
@_MARKET
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the checks and the verdict.")
@click.pass_obj
def check_cmd(app: App, version: str, market_name: str | None, db: Path | None, as_json: bool) -> None:
    """The promotion criteria of candidate V against the market's production (the version the relay recorded beside
    its shadow scores): fresh-episode evaluation at least as good, enough shadow windows, no extra trips."""
    from sentinel.lifecycle.shadow import promotion_check

    result = promotion_check(app.layout, app.config(), version, market=market_name, db=db)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"candidate {result['candidate']} vs production {result['production'] or '-'}"
                   f" (market {result['market'] or '-'})")
        for c in result["checks"]:
            click.echo(f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}: {c['detail']}")
    if not result["passed"]:
        raise click.exceptions.Exit(1)
