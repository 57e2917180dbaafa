"""``sentinel config``: the resolved configuration and where each value came from."""

from __future__ import annotations

import dataclasses
import json

import click

from sentinel.cli.common import App, emit_json
from sentinel.config import Setting, redact_url


@click.command(name="config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {file, file_exists, settings: [...]}.")
@click.pass_obj
def config_cmd(app: App, as_json: bool) -> None:
    """Every setting's value, its source (default, file, env or flag) and its one-line doc.

    Precedence, lowest first: defaults < sentinel.toml (or the file SENTINEL_CONFIG names) <
    SENTINEL_<SECTION>__<KEY> environment variables < flags (--set SECTION.KEY=VALUE, and a command's
    own options such as --data).
    """
    resolved = app.resolved()
    settings = [_shown(s) for s in resolved.settings()]
    if as_json:
        emit_json({
            "file": str(resolved.file), "file_exists": resolved.file.exists(),
            "settings": [{"name": s.name, "value": s.value, "source": s.source.kind, "origin": s.source.origin,
                          "doc": s.doc} for s in settings],
        })
        return
    click.echo(f"# configuration file: {resolved.file}{'' if resolved.file.exists() else ' (none)'}")
    for s in settings:
        source = s.source.kind + (f" {s.source.origin}" if s.source.origin else "")
        click.echo(f"{s.name} = {json.dumps(s.value)}  ({source})")
        click.echo(f"    {s.doc}")


def _shown(setting: Setting) -> Setting:
    """The setting as it may be printed: a secret URL as scheme://host only."""
    if setting.secret and isinstance(setting.value, tuple):
        return dataclasses.replace(setting, value=tuple(redact_url(str(v)) for v in setting.value))
    if setting.secret and setting.value:
        return dataclasses.replace(setting, value=redact_url(str(setting.value)))
    return setting
