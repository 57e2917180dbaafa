"""``sentinel audit``: independent verification of a breaker's whole history."""

from __future__ import annotations

from pathlib import Path

import click

from sentinel.cli.common import App, emit_json, progress, verdict


@verdict("clean", "discrepancies found")
@click.command()
@click.option("--rpc", default=None, help="JSON-RPC URL  [default: chain.rpc_url, else the local Anvil's port]")
@click.option("--breaker", default=None,
              help="SentinelBreaker address  [default: the one in .sentinel/deployments.json, for local runs]")
@click.option("--market", "market_name", default=None, metavar="NAME",
              help="Without --breaker: the breaker of this market of .sentinel/deployments.json, and its artifacts "
                   "unless --artifacts  [default: the only or the default market]")
@click.option("--artifacts", "artifacts", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Published model/circuit set: a project dir with circuits/manifest.json (repeatable, one per "
                   "model the breaker used)  [default: --root]")
@click.option("--data", "data", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Archived raw rows (market-depth CSV) to recompute input hashes and float scores (repeatable).")
@click.option("--from-block", type=int, default=0, show_default=True, help="First block to scan.")
@click.option("--to-block", type=int, default=None, help="Last block to scan  [default: the latest]")
@click.option("--workers", type=int, default=None, help="Proof-verifying processes  [default: audit.workers, 0 = CPUs]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a single-file HTML report (risk timeline, checks, findings).")
@click.pass_obj
def audit(app: App, rpc: str | None, breaker: str | None, market_name: str | None, artifacts: tuple[Path, ...],
          data: tuple[Path, ...],
          from_block: int, to_block: int | None, workers: int | None, as_json: bool, html_out: Path | None) -> None:
    """Verify everything the breaker did from the chain and published artifacts."""
    from sentinel.audit.run import AuditRequest, run_audit
    from sentinel.chain.deploy import OPTIMIZER_RUNS, rpc_url
    from sentinel.errors import AuditError

    config = app.config()
    published = artifacts or (app.root,)
    if breaker is None:
        # Convenience for a local run only: the address is the one thing taken from the operator's file,
        # and everything at that address is then checked against the published source.
        from sentinel.chain.deploy import load_deployment
        from sentinel.errors import SentinelError
        from sentinel.markets import markets

        try:
            deployment = load_deployment(app.layout, market_name)
        except SentinelError as exc:
            raise AuditError(f"no --breaker given and no local deployment to take it from ({exc})") from exc
        breaker = deployment.address("SentinelBreaker")
        rpc = rpc or deployment.rpc_url
        if not artifacts:  # the market's own published set
            own = [m.layout.root for m in markets(config, app.layout) if m.name == deployment.market]
            published = (own[0],) if own else published
    request = AuditRequest(
        rpc_url=rpc_url(config.chain, rpc), breaker=breaker, artifacts=published,
        breaker_source=app.layout.breaker_source, breaker_optimizer_runs=OPTIMIZER_RUNS, data=data,
        from_block=from_block, to_block=to_block, workers=config.audit.workers if workers is None else workers,
        parallel_min_reports=config.audit.parallel_min_reports, log_chunk_blocks=config.audit.log_chunk_blocks,
        score_tolerance=config.audit.score_tolerance or config.circuit.fidelity_tolerance,
    )
    report = run_audit(request, progress=progress)
    if html_out is not None:
        from sentinel.audit.html import write_html

        progress("html", f"report written to {write_html(report, html_out)}")
    if as_json:
        emit_json(report.to_dict())
    else:
        from sentinel.audit.report import render_text

        click.echo(render_text(report))
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)
