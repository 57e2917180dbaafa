"""The ``sentinel`` command: root group, shared context and error handling.

Library functions raise :class:`~sentinel.errors.SentinelError`; here each one
becomes a single ``error: ...`` line on stderr and exit code 1 (usage errors
exit 2, as click does). Tracebacks appear only with ``-v``. Heavy libraries are
imported inside commands so ``sentinel --help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from sentinel import __version__
from sentinel.cli.audit_cli import audit
from sentinel.cli.chain_cli import attest, chain, deploy, submit, vault
from sentinel.cli.data_cli import data
from sentinel.cli.model_cli import evaluate, export, score, train
from sentinel.cli.relay_cli import relay, replay_cmd
from sentinel.cli.zk_cli import bench, circuit, prove, verify
from sentinel.errors import SentinelError


@dataclass
class App:
    """Per-invocation state shared by every command."""

    root: Path
    verbose: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any):  # noqa: ANN201 - avoids importing config eagerly
        """Resolved configuration: defaults < sentinel.toml < env < these overrides."""
        from sentinel.config import load_config

        return load_config(self.root, {**self.overrides, **overrides})

    @property
    def layout(self):  # noqa: ANN201
        from sentinel.artifacts import ArtifactLayout

        return ArtifactLayout(self.root)


def emit_json(payload: Any) -> None:
    """Print one JSON document to stdout (machine output)."""
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


_VERBOSE = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sentinel")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Project directory (data/, models/, circuits/, sentinel.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, root: Path, verbose: bool) -> None:
    """Sentinel: prove liquidity-crash risk scores and trip an on-chain circuit breaker."""
    global _VERBOSE
    _VERBOSE = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = App(root=root.resolve(), verbose=verbose)


for command in (data, train, evaluate, export, score, circuit, prove, verify, bench,
                chain, deploy, attest, submit, vault, relay, audit):
    cli.add_command(command)
data.add_command(replay_cmd)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    try:
        result = cli.main(args=argv, prog_name="sentinel", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except SentinelError as exc:
        if _VERBOSE:
            logging.getLogger("sentinel").exception("failed")
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not a user error: say so in one line
        if _VERBOSE:
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with -v for the traceback)",
            err=True,
        )
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """``python -m sentinel`` and console-script shim."""
    sys.exit(main())
