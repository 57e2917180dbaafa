"""What every command module shares: per-invocation state, output helpers, exit-code rules.

Output: results go to stdout (:func:`emit_json` for ``--json``), progress and
warnings to stderr (:func:`progress`, :func:`warn`).

Exit codes: 0 done; 1 an error (a :class:`~sentinel.errors.SentinelError`,
one line on stderr); 2 a usage error. Commands whose result can be negative
(``verify``: an invalid proof; ``audit``: discrepancies; ``data validate``: an
invalid file; ``retrain``: no candidate; ``shadow check``: a promotion criterion fails) are marked with
:func:`verdict`: for them 1 means that negative result and every other
failure, "could not run", exits 2. ``main`` applies these rules in one place.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sentinel.config import DataConfig

if TYPE_CHECKING:
    from click.decorators import FC

    from sentinel.artifacts import ArtifactLayout
    from sentinel.config import ResolvedConfig, SentinelConfig
    from sentinel.errors import SentinelError

#: Help epilog of every command not marked with :func:`verdict`.
EXIT_CODES = "Exit codes: 0 done; 1 error (one line on stderr says what went wrong); 2 usage error."


@dataclass
class App:
    """Per-invocation state shared by every command."""

    root: Path = Path()
    verbose: bool = False
    #: ``--set`` values: dotted setting name -> raw value (the "flag" layer of the configuration).
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Set by :func:`verdict` commands: the errors that are the command's negative result (exit 1);
    #: any other failure exits 2. ``None`` for other commands (every error exits 1).
    verdict_errors: tuple[type[SentinelError], ...] | None = None

    def resolved(self, **overrides: Any) -> ResolvedConfig:
        """Configuration with the source of each value: defaults < sentinel.toml < env < --set < these."""
        from sentinel.config import resolve_config

        return resolve_config(self.root, {**self.overrides, **overrides})

    def config(self, **overrides: Any) -> SentinelConfig:
        """Resolved configuration: defaults < sentinel.toml < env < --set < these overrides (command flags)."""
        return self.resolved(**overrides).config

    @property
    def layout(self) -> ArtifactLayout:
        from sentinel.artifacts import ArtifactLayout

        return ArtifactLayout(self.root)

    def config_and_feed(self, data_path: Path | None, **overrides: Any) -> tuple[SentinelConfig, Path]:
        """The configuration and the feed to read: ``--data`` as typed (relative to the working
        directory), else the ``data.feed`` setting (relative to the project root)."""
        config = self.config(**{"data.feed": str(data_path.absolute()) if data_path else None}, **overrides)
        feed = self.layout.feed(config.data.feed)
        if data_path is None and not feed.exists():
            from sentinel.errors import DataFileError

            raise DataFileError(feed, "no such file (the data.feed setting)",
                                hint="pass --data FILE, or set [data] feed in sentinel.toml")
        return config, feed

    def exit_code(self, error: BaseException) -> int:
        """The exit code for a failure of the running command (see the module doc)."""
        if self.verdict_errors is None:
            return 1
        return 1 if isinstance(error, self.verdict_errors) else 2


def progress(step: str, detail: str) -> None:
    """One progress line on stderr: ``[step] detail``."""
    click.echo(f"[{step}] {detail}", err=True)


def warn(message: str) -> None:
    """One warning line on stderr."""
    click.echo(f"WARNING: {message}", err=True)


def emit_json(payload: Any) -> None:
    """Print one JSON document to stdout (machine output)."""
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


def verdict(ok: str, negative: str, *negative_errors: type[SentinelError]) -> Callable[[click.Command], click.Command]:
    """Mark a command whose result can be negative: exit 0 ``ok``, 1 ``negative``, 2 could not run.

    ``negative_errors`` are the errors that *are* the negative result (``data validate``'s invalid
    file); a command that reports its negative result itself raises ``click.exceptions.Exit(1)``.
    Apply above ``@click.command``.
    """

    def mark(command: click.Command) -> click.Command:
        callback = command.callback
        if callback is None:  # a programming error: @verdict goes above a @click.command with a function
            raise TypeError(f"@verdict: command {command.name!r} has no callback")

        @functools.wraps(callback)
        def run(*args: Any, **kwargs: Any) -> Any:
            click.get_current_context().ensure_object(App).verdict_errors = negative_errors
            return callback(*args, **kwargs)

        command.callback = run
        command.epilog = (f"Exit codes: 0 {ok}; 1 {negative}; 2 could not run (usage, configuration, "
                          "missing or unreadable input).")
        return command

    return mark


#: Help of every ``--families`` option.
FAMILY_HELP = ("drain, flash, bleed, dip, spike, drift, withdrawal, move (comma-separated or repeated; the last "
               "three have no classic form); default: the scenario space's fixed mix")


def family_names(values: tuple[str, ...]) -> list[str] | None:
    """``--families`` values (comma-separated or repeated) as a list; None when none were given."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


_DEFAULT_FEED = DataConfig().feed


def feed_option(text: str, *, dir_okay: bool = False) -> Callable[[FC], FC]:
    """``--data FILE``, defaulting to the ``data.feed`` setting (shown in --help); ``text`` is its help."""
    return click.option("--data", "data_path", type=click.Path(dir_okay=dir_okay, path_type=Path), default=None,
                        help=f"{text}  [default: the data.feed setting, {_DEFAULT_FEED}]")
