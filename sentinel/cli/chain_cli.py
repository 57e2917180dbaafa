"""``sentinel chain up|down|status|warp``, ``sentinel deploy``, ``attest``, ``submit``, ``vault ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sentinel.cli.common import App, emit_json, feed_option, progress, warn


def _unix(text: str) -> int:
    """A unix timestamp or an ISO-8601 time."""
    if text.strip().lstrip("-").isdigit():
        return int(text)
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"'{text}' is neither a unix timestamp nor an ISO-8601 time") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _warn_demo(keys_demo: bool) -> None:
    if keys_demo:
        warn("signing with UNSAFE demo keys (Anvil's public dev accounts): local chains only")


@click.group()
def chain() -> None:
    """The local Anvil chain: start, stop, inspect, move its clock."""


@chain.command()
@click.option("--port", type=int, default=None, help="Port  [default: chain.port, 8545]")
@click.option("--fresh", is_flag=True, help="Discard the saved chain state (and deployments.json) first.")
@click.option("--timestamp", "timestamp", default=None,
              help="Genesis time (unix or ISO-8601), to replay a recorded feed; implies --fresh.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def up(app: App, port: int | None, fresh: bool, timestamp: str | None, as_json: bool) -> None:
    """Start a local Anvil (pid, log and state under .sentinel/chain/); readiness is polled."""
    from sentinel.chain.anvil import chain_up

    config = app.config(**{"chain.port": port})
    info, started = chain_up(app.layout, config.chain.port, config.chain.chain_id, fresh=fresh,
                             timestamp=_unix(timestamp) if timestamp else None,
                             deadline_seconds=config.chain.startup_seconds)
    if as_json:
        emit_json({**info.to_dict(), "started_now": started})
    elif started:
        click.echo(f"anvil up: {info.rpc_url} (chain {info.chain_id}, pid {info.pid}, state {info.state_file})")
    else:
        click.echo(f"anvil already running: {info.rpc_url} (pid {info.pid})")


@chain.command()
@click.pass_obj
def down(app: App) -> None:
    """Stop the local Anvil (its state is kept for the next `up`)."""
    from sentinel.chain.anvil import chain_down

    stopped = chain_down(app.layout)
    click.echo(f"anvil stopped (pid {stopped.pid})" if stopped else "no local anvil running")


@chain.command(name="status")
@click.option("--rpc", default=None, help="JSON-RPC URL  [default: the deployment's]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def chain_status(app: App, rpc: str | None, as_json: bool) -> None:
    """Local Anvil, then every deployed market's breaker state and vault, if deployed.

    JSON: ``markets`` maps each market to its state; ``deployment`` is the only (or the default) market's.
    """
    from sentinel.chain.anvil import running_chain
    from sentinel.chain.breaker import statuses
    from sentinel.config import DEFAULT_MARKET

    local = running_chain(app.layout)
    if not as_json:
        click.echo(f"local anvil: {local.rpc_url} (pid {local.pid})" if local else "local anvil: not running")
    payload: dict[str, Any] = {"local_anvil": local.to_dict() if local else None, "deployment": None, "markets": {}}
    if app.layout.deployments.exists():
        payload["markets"] = statuses(app.layout, app.config(), rpc)
        found = payload["markets"]
        payload["deployment"] = next(iter(found.values())) if len(found) == 1 else found.get(DEFAULT_MARKET)
    if as_json:
        emit_json(payload)
        return
    if not payload["markets"]:
        click.echo("breaker: not deployed (run `sentinel deploy`)")
        return
    for dep in payload["markets"].values():
        _print_state(dep, named=len(payload["markets"]) > 1)


def _trip_state(breaker: dict[str, Any]) -> str:
    if not breaker["tripped"]:
        return "ARMED (one more high window trips it), not tripped" if breaker.get("armed") else "not tripped"
    return "TRIPPED by hand (only governance recovers)" if breaker.get("manual_trip") else "TRIPPED"


def _print_state(dep: dict[str, Any], *, named: bool = False) -> None:
    """A market's breaker and vault, two lines (``named``: after a line naming the market and its asset)."""
    b, v = dep["breaker"], dep["vault"]
    if named:
        click.echo(f"market {dep['market']} (asset {dep['asset']}):")
    click.echo(f"breaker {dep['breaker_address']} on chain {dep['chain_id']} (block {dep['block']}): "
               f"{_trip_state(b)}; last window {b['last_window_id']}, "
               f"high streak {b['high_streak']}/{b['trip_after']} (>= {b['trip_threshold']:.4f}), "
               f"low streak {b['low_streak']}/{b['reset_after']} (<= {b['reset_threshold']:.4f})")
    click.echo(f"vault {dep['vault_address']}: {'OPEN' if v['open'] else 'CLOSED (withdrawals and borrows stopped)'}; "
               f"deposits {v['total_deposits']:g}, debt {v['total_debt']:g}; user {v['account']} deposit "
               f"{v['deposit']:g}, wallet {v['wallet']:g}")


@chain.command()
@click.option("--to", "to", required=True, help="New chain time (unix or ISO-8601); forward only.")
@click.pass_obj
def warp(app: App, to: str) -> None:
    """Move the local chain's clock forward and mine a block (local Anvil only: replaying a feed)."""
    from sentinel.chain.anvil import running_chain
    from sentinel.chain.anvil import warp as do_warp
    from sentinel.errors import ChainError

    local = running_chain(app.layout)
    if local is None:
        raise ChainError("no local anvil running", hint="`sentinel chain up`; warp only moves a local chain")
    click.echo(f"chain time now {do_warp(local.rpc_url, _unix(to))}")


@click.command()
@click.option("--rpc", default=None, help="JSON-RPC URL  [default: chain.rpc_url, else the local Anvil]")
@click.option("--json", "as_json", is_flag=True, help="Print the deployment as JSON.")
@click.pass_obj
def deploy(app: App, rpc: str | None, as_json: bool) -> None:
    """Compile (npm solc) and deploy, per market, verifier, breaker, demo token and vault; write deployments.json.

    JSON: one market's deployment as before; with several markets, ``{"version", "markets": {name: ...}}``.
    """
    from sentinel.chain.deploy import deploy_project

    deployments = deploy_project(app.layout, app.config(), rpc, progress=progress)
    every = list(deployments.markets.values())
    if every[0].chain_id == 31337 and every[0].deployer == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266":
        warn("deployed with UNSAFE demo keys (Anvil's public dev accounts): local chains only")
    for d in every:
        if d.circuit["srs_test_only"]:
            warn(f"{'' if len(every) == 1 else f'market {d.market}: '}the verifier's circuit was set up with a "
                 "TEST-ONLY SRS: proofs can be forged")
    if as_json:
        payload = deployments.to_dict()
        for entry in payload["markets"].values():
            for contract in entry["contracts"].values():
                contract.pop("abi")
        emit_json(payload["markets"][every[0].market] if len(every) == 1 else payload)
        return
    for d in every:
        if len(every) > 1:
            click.echo(f"market {d.market} (asset {d.asset}):")
        for name, c in d.contracts.items():
            click.echo(f"{name:16s} {c['address']}  gas {c['gas_used']:>9,}  runtime {c['runtime_bytes']:>6,} bytes")
        p = d.policy
        click.echo(f"policy ({p['source']}): trip >= {p['trip_threshold']:.4f} x{p['trip_after']}, reset <= "
                   f"{p['reset_threshold']:.4f} x{p['reset_after']}, cooldown {p['cooldown_seconds']} s, max age "
                   f"{p['max_age_seconds']} s, quorum {d.quorum} of {len(d.attesters)}")
    click.echo(f"wrote {app.layout.deployments}")


@click.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@feed_option("The attesters' own copy of the feed: the window's input hash is recomputed from it before signing.")
@click.option("--no-check", is_flag=True,
              help="Sign without recomputing the input hash from a feed (trust the bundle's input hash).")
@click.option("--market", "market", default=None, metavar="NAME",
              help="The market whose breaker to sign for  [default: the only market, or 'default']")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def attest(app: App, bundle: Path, data_path: Path | None, no_check: bool, market: str | None, as_json: bool) -> None:
    """Sign BUNDLE's (windowId, windowEnd, inputHash) as EIP-712 data for the deployed breaker."""
    from sentinel.chain.breaker import attest_bundle

    if no_check and data_path is not None:
        raise click.UsageError("--no-check and --data are exclusive")
    config, feed = (app.config(), None) if no_check else app.config_and_feed(data_path)
    result = attest_bundle(app.layout, config, bundle, feed, market)
    _warn_demo(result.demo_keys)
    if as_json:
        emit_json(result.to_dict())
        return
    checked = f", input hash recomputed from {result.checked_against}" if result.checked_against else ""
    click.echo(f"window {result.window_id}: {len(result.signers)} attester signature(s) (quorum {result.quorum})"
               f"{checked} -> {result.path}")


@click.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--attestation", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Attestation file  [default: the one `sentinel attest` wrote beside BUNDLE]")
@click.option("--rpc", default=None, help="JSON-RPC URL  [default: the deployment's]")
@click.option("--market", "market", default=None, metavar="NAME",
              help="The market whose breaker to submit to  [default: the only market, or 'default']")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def submit(app: App, bundle: Path, attestation: Path | None, rpc: str | None, market: str | None,
           as_json: bool) -> None:
    """Submit a proven, attested window to the breaker; prints tx_hash, gas_used, score, tripped."""
    from sentinel.chain.breaker import submit_bundle

    result = submit_bundle(app.layout, app.config(), bundle, attestation, rpc, market)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"window {result.window_id}: score {result.score:.4f}, tripped {str(result.tripped).lower()}, "
               f"gas_used {result.gas_used:,}, tx_hash {result.tx_hash}"
               + (f" [{', '.join(e for e in result.events if e != 'Report')}]" if len(result.events) > 1 else ""))


@click.group()
def vault() -> None:
    """The guarded example vault (as the demo user): status, deposit, withdraw, borrow, repay."""


#: ``--market NAME``: which market's vault (default: the only market, or the one called default).
market_option = click.option("--market", "market", default=None, metavar="NAME",
                             help="The market whose vault to use  [default: the only market, or 'default']")


@vault.command(name="status")
@market_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def vault_status(app: App, market: str | None, as_json: bool) -> None:
    """A market's breaker and vault state."""
    from sentinel.chain.breaker import status

    payload = status(app.layout, app.config(), market=market)
    if as_json:
        emit_json(payload)
    else:
        _print_state(payload)


def _vault_command(action: str) -> click.Command:
    @click.command(name=action, help=f"{action.capitalize()} AMOUNT demo tokens as the vault user.")
    @click.argument("amount", type=float)
    @market_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_obj
    def command(app: App, amount: float, market: str | None, as_json: bool) -> None:
        from sentinel.chain.breaker import vault_action

        result = vault_action(app.layout, app.config(), action, amount, market=market)
        if as_json:
            emit_json(result.to_dict())
        else:
            click.echo(f"{action} {amount:g}: ok (gas {result.gas_used:,}, tx {result.tx_hash})")

    return command


for _action in ("deposit", "withdraw", "borrow", "repay"):
    vault.add_command(_vault_command(_action))
