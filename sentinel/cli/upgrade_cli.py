"""``sentinel upgrade propose|execute|cancel|status``: a market's model upgrade through the breaker's timelock."""

from __future__ import annotations

import click

from sentinel.cli.common import App, emit_json, progress

_MARKET = click.option("--market", "market", default=None, metavar="NAME",
                       help="The market whose breaker to upgrade  [default: the only or the default market]")
_RPC = click.option("--rpc", default=None, help="JSON-RPC URL  [default: the deployment's]")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def upgrade() -> None:
    """Move a market's breaker to another model version: propose (timelock starts), execute after the delay.

    The relay and the attester services follow by themselves: they switch artifact sets at the block the
    upgrade executes in.
    """


@upgrade.command()
@click.option("--version", "version", required=True, metavar="V",
              help="The model version to propose (an id or unambiguous prefix; `sentinel models list`)")
@_MARKET
@_RPC
@_JSON
@click.pass_obj
def propose(app: App, version: str, market: str | None, rpc: str | None, as_json: bool) -> None:
    """Deploy V's verifier (and batch verifier) and propose it on the breaker's timelock."""
    from sentinel.lifecycle.upgrade import propose as run

    result = run(app.layout, app.config(), version, market=market, rpc=rpc, progress=progress)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"proposed: market {result.market} -> version {result.version} (verifier {result.verifier}"
               + (f", batch verifier {result.batch_verifier} x{result.batch_windows}" if result.batch_verifier else "")
               + f"), tx {result.tx_hash}")
    click.echo(f"eta: {result.eta_utc} (chain time); then `sentinel upgrade execute"
               f"{' --market ' + result.market if market else ''}`")
    click.echo("to withdraw it before then: `sentinel upgrade cancel` (governance); the guardian can trip the breaker "
               "at any time")


@upgrade.command()
@_MARKET
@_RPC
@_JSON
@click.pass_obj
def execute(app: App, market: str | None, rpc: str | None, as_json: bool) -> None:
    """Execute the pending upgrade once its eta has passed (chain time)."""
    from sentinel.lifecycle.upgrade import execute as run

    result = run(app.layout, app.config(), market=market, rpc=rpc)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"executed: market {result.market} now runs version {result.version} (verifier {result.verifier}), "
               f"was {result.previous_version or '?'} ({result.previous_verifier}); block {result.block}, "
               f"tx {result.tx_hash}")


@upgrade.command()
@_MARKET
@_RPC
@_JSON
@click.pass_obj
def cancel(app: App, market: str | None, rpc: str | None, as_json: bool) -> None:
    """Withdraw the pending upgrade (governance)."""
    from sentinel.lifecycle.upgrade import cancel as run

    result = run(app.layout, app.config(), market=market, rpc=rpc)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"cancelled: market {result.market}'s pending upgrade to {result.version or '?'} "
               f"(verifier {result.verifier}), tx {result.tx_hash}")


@upgrade.command(name="status")
@_MARKET
@_RPC
@_JSON
@click.pass_obj
def status_cmd(app: App, market: str | None, rpc: str | None, as_json: bool) -> None:
    """The version in force (by the verifier's code) and the pending one with its eta."""
    from sentinel.lifecycle.upgrade import status

    doc = status(app.layout, app.config(), market=market, rpc=rpc)
    if as_json:
        emit_json(doc)
        return
    version = doc["version"] or f"UNKNOWN (code sha256 {doc['verifier_code_sha256'][:16]}...: `sentinel models add`)"
    click.echo(f"market {doc['market']}: version {version}, verifier {doc['verifier']} (breaker {doc['breaker']}, "
               f"timelock {doc['timelock_seconds']} s)")
    pending = doc["pending"]
    if pending is None:
        click.echo("pending: none")
        return
    when = "executable now" if pending["executable"] else f"{pending['seconds_left']} s of chain time left"
    click.echo(f"pending: version {pending['version'] or 'UNKNOWN'} (verifier {pending['verifier']}), eta "
               f"{pending['eta_utc']}: {when}" + ("" if pending["recorded"] else
                                                   " (not recorded in deployments.json)"))
