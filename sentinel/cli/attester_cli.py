"""``sentinel attester serve``: one independent attester party as an HTTP service."""

from __future__ import annotations

from pathlib import Path

import click

from sentinel.cli.common import App


@click.group()
def attester() -> None:
    """An attester party: signs a window's attestation only after recomputing its input hash from its own feed."""


@attester.command()
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="This party's own feed: a market_depth.csv or a directory of them  "
                   "[default: attester.feed, else data.feed]")
@click.option("--keyfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding this attester's private key, mode 600  [default: env SENTINEL_ATTESTER_KEY, "
                   "else attester.keyfile]")
@click.option("--demo-account", type=int, default=None,
              help="Sign with this Anvil dev account (local chain 31337 only)")
@click.option("--host", default=None, help="Address to listen on  [default: 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port to listen on  [default: 9480]")
@click.option("--rpc", default=None,
              help="This party's own node: its latest block's time is the reference clock  [default: attester.rpc_url, "
                   "else the wall clock]")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Signing record  [default: .sentinel/attester/signed.sqlite]")
@click.option("--market", "market_name", default=None, metavar="NAME",
              help="Sign for this market of sentinel.toml: its breaker, its model's input hash, its feed unless "
                   "--data  [default: the only or the default market]")
@click.pass_obj
def serve(app: App, data_path: Path | None, keyfile: Path | None, demo_account: int | None, host: str | None,
          port: int | None, rpc: str | None, record: Path | None, market_name: str | None) -> None:
    """Serve POST /v1/attest, /healthz and /metrics until SIGTERM/SIGINT. Logs one line per decision on stderr."""
    import time

    started = time.perf_counter()
    from sentinel.attester.server import serve as serve_forever
    from sentinel.attester.service import Attester, served_target
    from sentinel.chain.keys import attester_key
    from sentinel.markets import market

    def absolute(path: Path | None) -> str | None:
        return str(path.absolute()) if path is not None else None

    overrides = {"attester.feed": absolute(data_path), "attester.keyfile": absolute(keyfile),
                 "attester.demo_account": demo_account, "attester.host": host, "attester.port": port,
                 "attester.rpc_url": rpc, "attester.record": absolute(record)}
    config = app.config(**overrides)
    chosen = market(config, app.layout, market_name)
    if not config.attester.feed:  # the market's own feed (data.feed for the default market)
        config = app.config(**{**overrides, "attester.feed": str(chosen.feed)})
    ac = config.attester
    target = served_target(app.layout, config, chosen.name)
    key_path = str(app.layout.root / Path(ac.keyfile).expanduser()) if ac.keyfile else ""
    key = attester_key(target.chain_id, key_path, ac.demo_account)
    serve_forever(Attester(app.layout, config, key, target=target, artifacts=chosen.layout), ac, started=started)
