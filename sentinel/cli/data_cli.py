"""``sentinel data``: generate, validate, ingest, profile and plot market-depth files."""

from __future__ import annotations

from pathlib import Path

import click

from sentinel.cli.common import FAMILY_HELP, App, emit_json, family_names, verdict
from sentinel.errors import DataValidationError


@click.group()
def data() -> None:
    """Market-depth data: synthetic scenarios, validation, ingestion, pictures."""


@data.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV to write  [default: data/synthetic.csv]")
@click.option("--episodes", type=int, default=200, show_default=True, help="Number of scenario episodes.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed; same seed, same bytes.")
@click.option("--families", multiple=True, help=FAMILY_HELP)
@click.option("--like", "like", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Real market_depth.csv whose healthy statistics the scenarios should match.")
@click.option("--start", default=None,
              help="Timestamp of the first row (ISO-8601, UTC).  [default: 2025-01-01T00:00:00Z]")
@click.option("--scenarios", type=click.Choice(["classic", "ranges"]), default=None,
              help="Scenario space: classic (fixed ranges per family) or ranges (parameter ranges, more hard "
                   "negatives; docs/data.md)  [default: model.scenarios]")
@click.option("--vary-market/--one-market", "vary_market", default=None,
              help="ranges only: each episode's healthy market (BLR level and noise, depth memory, return "
                   "volatility) drawn around the profile, or every episode the profile's own market  "
                   "[default: model.vary_market for ranges scenarios]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def generate(app: App, out: Path | None, episodes: int, seed: int, families: tuple[str, ...],
             like: Path | None, start: str | None, scenarios: str | None, vary_market: bool | None,
             as_json: bool) -> None:
    """Generate seeded synthetic liquidity-crash scenarios with ground truth."""
    from sentinel.data.pipeline import generate_file

    config = app.config()
    space = scenarios or config.model.scenarios
    if vary_market is None:
        vary_market = config.model.vary_market and space == "ranges"
    result = generate_file(
        out or app.layout.synthetic_data, episodes=episodes, seed=seed, families=family_names(families),
        like=like, start=start, config=config.data, scenarios=space, vary_market=vary_market,
    )
    if as_json:
        emit_json(result.to_dict())
        return
    varied = ", varied markets" if result.vary_market else ""
    click.echo(f"wrote {result.path}: {result.rows} rows, {result.episodes} episodes ({result.scenarios} scenarios"
               f"{varied}), "
               f"sha256 {result.sha256[:16]}")
    click.echo("episodes by family: " + ", ".join(f"{k} {v}" for k, v in result.by_family.items()))
    if result.calibration is not None:
        around = " (the profile the markets vary around)" if result.vary_market else ""
        click.echo(f"calibrated to {like}{around} (healthy rows only; tolerance per statistic):")
        for name, row in result.calibration.items():
            mark = "ok " if row["ok"] else "OFF"
            click.echo(f"  {mark} {name:<14} real {row['reference']:<12.6g} generated {row['generated']:<12.6g}"
                       f" rel.err {row['rel_error']:.3f} (<= {row['tolerance']})")


@verdict("the file is valid", "the file breaks the schema (the first problem is named)", DataValidationError)
@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--cadence", type=float, default=None, help="Expected seconds between rows (default: inferred).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def validate(app: App, file: Path, cadence: float | None, as_json: bool) -> None:
    """Check FILE against the market-depth schema; a bad file is named by its first bad row and column."""
    from sentinel.data.io import read_market_csv
    from sentinel.data.pipeline import summarize

    summary = summarize(read_market_csv(file, app.config(**{"data.cadence_seconds": cadence}).data))
    if as_json:
        emit_json({"valid": True, **summary})
        return
    click.echo(
        f"ok: {file}: {summary['rows']} rows from {summary['first_timestamp']} to {summary['last_timestamp']}, "
        f"cadence {summary['cadence_seconds']:g} s"
        + (", with ground truth" if summary["has_truth"] else "")
    )


data.add_command(validate)


@data.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Canonical CSV to write.")
@click.option("--cadence", type=float, default=None, help="Expected seconds between rows (default: inferred).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def ingest(app: App, file: Path, out: Path, cadence: float | None, as_json: bool) -> None:
    """Validate FILE and write it in canonical form to --out (nothing is written on error)."""
    from sentinel.data.io import ingest as ingest_file

    result = ingest_file(file, out, app.config(**{"data.cadence_seconds": cadence}).data)
    if as_json:
        emit_json({
            "source": str(result.source), "out": str(result.written.path), "rows": result.written.rows,
            "sha256": result.written.sha256, "cadence_seconds": result.cadence_seconds,
            "first_timestamp": result.first_timestamp, "last_timestamp": result.last_timestamp,
            "dropped_columns": list(result.dropped_columns),
        })
        return
    click.echo(f"wrote {result.written.path}: {result.written.rows} rows, sha256 {result.written.sha256[:16]}")
    if result.dropped_columns:
        click.echo(f"dropped columns not in the schema: {', '.join(result.dropped_columns)}", err=True)


@data.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def profile(app: App, file: Path, as_json: bool) -> None:
    """Print FILE's healthy-regime statistics (what --like calibrates to)."""
    from sentinel.data.calibrate import healthy_stats
    from sentinel.data.io import read_market_csv

    stats = healthy_stats(read_market_csv(file, app.config().data))
    if as_json:
        emit_json(stats.to_dict())
        return
    for name, value in stats.to_dict().items():
        click.echo(f"{name:<16} {value:.6g}")


@data.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write.")
@click.option("--episode", type=int, default=None, help="Plot one episode (synthetic data).")
@click.option("--rows", "rows", default=None, metavar="FIRST:LAST", help="Plot an inclusive 1-based row range.")
@click.pass_obj
def plot(app: App, file: Path, out: Path, episode: int | None, rows: str | None) -> None:
    """Draw BLR, price and depth over time with crash phases shaded."""
    from sentinel.data.io import read_market_csv
    from sentinel.data.plot import plot_market, select_rows

    first = last = None
    if rows is not None:
        try:
            a, _, b = rows.partition(":")
            first, last = (int(a) if a else None), (int(b) if b else None)
        except ValueError:
            raise click.BadParameter(f"expected FIRST:LAST row numbers, got '{rows}'", param_hint="--rows") from None
    market = read_market_csv(file, app.config().data)
    lo, hi = select_rows(market, episode=episode, first=first, last=last)
    result = plot_market(market, out, lo, hi)
    click.echo(f"wrote {result.path}: rows {result.first_row}-{result.last_row}")
