"""The ``sentinel`` command: root group and the one error handler.

Library functions raise :class:`~sentinel.errors.SentinelError`; :func:`main`
turns each into a single ``error: ...`` line on stderr and an exit code chosen
by the rules in :mod:`sentinel.cli.common` (1, or 2 "could not run" for
commands with a negative result of their own; usage errors exit 2, as click
does). Tracebacks appear only with ``-v``. Heavy libraries are imported inside
commands so ``sentinel --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from sentinel import __version__
from sentinel.cli.attester_cli import attester
from sentinel.cli.audit_cli import audit
from sentinel.cli.chain_cli import attest, chain, deploy, submit, vault
from sentinel.cli.common import EXIT_CODES, App
from sentinel.cli.config_cli import config_cmd
from sentinel.cli.data_cli import data
from sentinel.cli.model_cli import evaluate, export, onboard, score, train
from sentinel.cli.models_cli import models, retrain
from sentinel.cli.quiet import quiet_native_logs
from sentinel.cli.relay_cli import relay, replay_cmd
from sentinel.cli.shadow_cli import shadow
from sentinel.cli.upgrade_cli import upgrade
from sentinel.cli.zk_cli import bench, circuit, prove, verify
from sentinel.errors import SentinelError


def _settings(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or "." not in name.strip():
            raise click.BadParameter(f"'{text}': expected SECTION.KEY=VALUE, e.g. model.units=4")
        pairs[name.strip()] = value
    return pairs


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="Exit codes: 0 done; 1 error, or the negative result of verify (an invalid proof), audit "
                    "(discrepancies), data validate (an invalid file), retrain (no candidate) and shadow check (a "
                    "promotion criterion fails); 2 usage error, or could not run for those five; 130 interrupted.")
@click.version_option(__version__, prog_name="sentinel")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Project directory (data/, models/, circuits/, sentinel.toml).",
)
@click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE", callback=_settings,
              help="Override a setting for this run (repeatable; above sentinel.toml and SENTINEL_* env). "
                   "See `sentinel config`.")
@click.option("-v", "--verbose", is_flag=True,
              help="Debug logging, native libraries' start-up logs and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, root: Path, settings: dict[str, str], verbose: bool) -> None:
    """Sentinel: prove liquidity-crash risk scores and trip an on-chain circuit breaker."""
    quiet_native_logs(verbose)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    app = ctx.ensure_object(App)
    app.root, app.verbose, app.overrides = root.resolve(), verbose, settings


for command in (data, train, evaluate, export, score, onboard, circuit, prove, verify, bench,
                chain, deploy, attest, submit, vault, relay, attester, audit, config_cmd, models, retrain, shadow,
                upgrade):
    cli.add_command(command)
data.add_command(replay_cmd)


def _document_exit_codes(group: click.Group) -> None:
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _document_exit_codes(command)
        elif command.epilog is None:
            command.epilog = EXIT_CODES


_document_exit_codes(cli)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    app = App()
    try:
        result = cli.main(args=argv, prog_name="sentinel", standalone_mode=False, obj=app)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except SentinelError as exc:
        if app.verbose:
            logging.getLogger("sentinel").exception("failed")
        click.echo(f"error: {exc}", err=True)
        return app.exit_code(exc)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not a user error: say so in one line
        if app.verbose:
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with -v for the traceback)",
            err=True,
        )
        return app.exit_code(exc)
    return result if isinstance(result, int) else 0


def run() -> None:
    """``python -m sentinel`` and console-script shim."""
    sys.exit(main())
