"""``sentinel models list | add | evaluate | build`` and ``sentinel retrain``: model versions side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sentinel.cli.common import App, emit_json, progress, verdict

if TYPE_CHECKING:
    from sentinel.lifecycle.registry import Listing
    from sentinel.lifecycle.retrain import RetrainResult
    from sentinel.versions import Version


@click.group()
def models() -> None:
    """Model versions: every artifact set Sentinel knows, its figures, and which breaker runs it."""


def _figures(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "not evaluated (`sentinel models evaluate ID`)"
    recall = ", ".join(f"{f} {r:.2f}" if r is not None else f"{f} -" for f, r in summary["recall"].items())
    ft, lead = summary["false_trips_per_10k"], summary["median_lead_rows"]
    like = f", like {Path(summary['calibrated_to']).name}" if summary.get("calibrated_to") else ""
    return (f"{summary['episodes']} fresh episodes (seed {summary['seed']}{like}): recall {recall or '-'}; "
            f"false trips {'-' if ft is None else format(ft, '.2f')}/10k; "
            f"median lead {'-' if lead is None else format(lead, 'g')} rows")


def _listing_lines(listing: Listing) -> list[str]:
    from sentinel.lifecycle.registry import circuit_summary, evaluation_summary, utc

    lines: list[str] = []
    for v in listing.versions:
        lines.append(f"{v.id}  {', '.join(v.origins)}  {v.layout.root}")
        lines.append(f"  trained {v.trained_at or '-'}")
        circuit = circuit_summary(v)
        lines.append("  circuit: not built (`sentinel models build ID`)" if circuit is None else
                     f"  circuit: built, 2^{circuit['logrows']} rows, verifier runtime "
                     f"{str(circuit['verifier_runtime_sha256'])[:12]}")
        lines.append(f"  evaluation: {_figures(evaluation_summary(v.evaluation))}")
        for m in listing.markets:
            if m.version == v.id:
                how = "runs on" if m.source == "chain" else "deployed with on"
                lines.append(f"  {how} market {m.market} (breaker {m.breaker})")
            if m.pending_version == v.id:
                lines.append(f"  proposed on market {m.market}, executable after {utc(m.pending_eta)}")
    if not listing.versions:
        lines.append("no model versions (train one: `sentinel train`)")
    if listing.chain_note:
        lines.append(listing.chain_note)
    for m in listing.markets:
        if m.version is None:
            code = str(m.verifier_runtime_sha256 or "?")[:12]
            how = "its breaker's verifier" if m.source == "chain" else "it was deployed with a verifier whose"
            lines.append(f"market {m.market}: {how} code {code} is no known version")
        if m.pending_verifier and m.pending_version is None:
            lines.append(f"market {m.market}: proposed verifier {m.pending_verifier} is no known version, "
                         f"executable after {utc(m.pending_eta)}")
    if not listing.deployed:
        lines.append("nothing deployed: no breaker runs any version yet")
    return lines


@models.command("list")
@click.option("--rpc", default=None, help="JSON-RPC endpoint to read the breakers from  [default: the deployment's]")
@click.option("--json", "as_json", is_flag=True, help="Print the listing as JSON.")
@click.pass_obj
def list_cmd(app: App, rpc: str | None, as_json: bool) -> None:
    """Every known version: where it lies, when it was trained, its circuit, its fresh-episode figures, and which
    markets' breakers run it (read on chain; the deployment record when the node does not answer)."""
    from sentinel.lifecycle.registry import list_versions

    listing = list_versions(app.config(), app.layout, rpc)
    if as_json:
        emit_json(listing.to_dict())
        return
    for line in _listing_lines(listing):
        click.echo(line)


def _version(app: App, wanted: str) -> Version:
    from sentinel.versions import find_version, known_versions

    return find_version(known_versions(app.config(), app.layout), wanted)


@models.command("add")
@click.argument("source", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--no-circuits", is_flag=True, help="Copy the model only, not its built circuit.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
@click.pass_obj
def add(app: App, source: Path, no_circuits: bool, as_json: bool) -> None:
    """Add the artifact set SOURCE (laid out like a project root, as `sentinel onboard` writes) as
    versions/<id>/, atomically."""
    from sentinel.versions import add_version

    version = add_version(app.layout, source, circuits=not no_circuits)
    if as_json:
        emit_json({"id": version.id, "path": str(version.layout.root), "built": version.built,
                   "onnx_sha256": version.onnx_sha256})
        return
    click.echo(f"{version.id} at {version.layout.root} (circuit {'built' if version.built else 'not built'})")


@models.command("evaluate")
@click.argument("version")
@click.option("--fresh", "episodes", type=int, default=None,
              help="Fresh episodes  [default: production's evaluation's (models/evaluation.json), else as "
                   "evaluate --fresh]")
@click.option("--seed", type=int, default=None, help="The episodes' seed  [default: production's evaluation's]")
@click.option("--like", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Calibrate the episodes to this real feed  [default: as production's evaluation was]")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
@click.pass_obj
def evaluate_cmd(app: App, version: str, episodes: int | None, seed: int | None, like: Path | None,
                 as_json: bool) -> None:
    """Evaluate VERSION on fresh episodes (float model, every baseline beside it) and keep the result as its
    models/evaluation.json: what `sentinel shadow check` and `sentinel retrain` compare. Production's own is made
    the same way (`sentinel models evaluate <production id>`)."""
    from sentinel.cli.model_cli import _fresh_table
    from sentinel.lifecycle.registry import evaluate_version, set_config

    chosen = _version(app, version)
    config = set_config(chosen.layout.root, app.root, app.overrides)
    result = evaluate_version(chosen, config, app.layout, episodes=episodes, seed=seed, like=like,
                              progress=None if as_json else progress)
    if as_json:
        emit_json(result)
        return
    for line in _fresh_table(result):
        click.echo(line)
    click.echo(f"wrote {chosen.layout.evaluation}")


@models.command("build")
@click.argument("version")
@click.option("--srs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A production SRS file  [default: a locally generated TEST-ONLY SRS]")
@click.option("--force", is_flag=True, help="Rebuild even when the circuit is up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print the build result as JSON.")
@click.pass_obj
def build(app: App, version: str, srs: Path | None, force: bool, as_json: bool) -> None:
    """Build VERSION's circuit (and verifier) in its own directory, with its own sentinel.toml's settings (the
    project's when it has none)."""
    from sentinel.lifecycle.registry import build_version, set_config

    chosen = _version(app, version)
    config = set_config(chosen.layout.root, app.root, app.overrides)
    result = build_version(chosen, config, srs=srs, force=force, progress=None if as_json else progress)
    if as_json:
        emit_json(result.to_dict())
        return
    m = result.manifest
    click.echo(f"{chosen.id}: circuit {'up to date' if result.skipped else 'built'} in {chosen.layout.circuits_dir}, "
               f"2^{m['circuit']['logrows']} rows, verifier runtime {m['verifier_runtime_sha256'][:12]}; next: "
               f"sentinel upgrade propose --version {chosen.id}")


#: ``sentinel retrain``'s exit codes (the timer's unit tells them apart).
RETRAIN_OK = "a candidate was written under versions/"
RETRAIN_NO = "no candidate: it did not beat production (one line per failed check)"


@verdict(RETRAIN_OK, RETRAIN_NO)
@click.command()
@click.option("--like", "real", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="The latest real market-depth CSV: scenarios calibrated to it, fresh episodes too, and it "
                   "taken as healthy (every trip a false one).")
@click.option("--market", default=None, help="The market whose production the candidate must beat  "
                                              "[default: the only or the default one]")
@click.option("--episodes", type=int, default=None, help="Training episodes  [default: model.data_episodes]")
@click.option("--fresh", type=int, default=None,
              help="Fresh evaluation episodes  [default: production's evaluation's, else as evaluate --fresh]")
@click.option("--seed", type=int, default=None,
              help="The fresh episodes' seed  [default: production's evaluation's, else as evaluate --fresh]")
@click.option("--json", "as_json", is_flag=True, help="Print the report (every figure, every check) as JSON.")
@click.pass_obj
def retrain(app: App, real: Path, market: str | None, episodes: int | None, fresh: int | None, seed: int | None,
            as_json: bool) -> None:
    """Train a candidate on scenarios calibrated to the latest real feed and keep it (versions/<id>/) only if it
    beats the market's production on the same fresh episodes and on the feed: one command for a timer
    (docs/lifecycle.md). Its circuit is not built here: `sentinel models build ID` comes next."""
    from sentinel.lifecycle.retrain import retrain as run_retrain

    result = run_retrain(app.layout, app.config(), real, market=market, episodes=episodes, fresh=fresh, seed=seed,
                         overrides=app.overrides, progress=None if as_json else progress)
    finish_retrain(result, as_json)


def finish_retrain(result: RetrainResult, as_json: bool) -> None:
    """Print ``sentinel retrain``'s outcome (the report with --json; every failed check on its own line, on
    stderr with --json) and exit 1 when no candidate was written."""
    report = result.report
    if as_json:
        emit_json(report)
    else:
        prod, cand, fresh = report["production"], report["candidate"], report["production"]["fresh"]
        real = Path(report["real"]).name
        click.echo(f"market {report['market']}: production {prod['id']} vs candidate {cand['id']} on "
                   f"{fresh['episodes']} fresh episodes (seed {fresh['seed']}, like {real}) and on {real}")
        click.echo("\n".join(f"  ok   {c.name}: {c.detail}" for c in result.checks if c.passed))
    for check in result.failed:
        click.echo(f"FAILED {check.name}: {check.detail}", err=as_json)
    if result.written is None:
        if not as_json:
            click.echo("no candidate written")
        raise click.exceptions.Exit(1)
    if not as_json:
        v = cand["id"]
        click.echo(f"wrote the candidate {v} at {result.written}; next: sentinel models build {v}, shadow scoring, "
                   f"sentinel upgrade propose --version {v} (docs/lifecycle.md)")
