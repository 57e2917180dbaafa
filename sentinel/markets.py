"""The guarded markets, their settings resolved against the project: one place that turns ``[markets.<name>]``
tables into paths and layouts, for ``sentinel deploy``, the chain and vault commands and the relay.

A market has its own feed, its own artifact set (a model and its circuits, laid out like a project root: what
``sentinel onboard`` writes) and its own attesters; the project keeps one state directory (deployments,
chain, relay queue) for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentinel.artifacts import ArtifactLayout
from sentinel.config import DEFAULT_MARKET, SentinelConfig
from sentinel.errors import ConfigError


@dataclass(frozen=True)
class Market:
    """One market with its settings resolved: absolute feed path, the layout of its artifact set, attester URLs."""

    name: str
    feed: Path  #: a CSV, or a directory of them (the relay follows the newest)
    layout: ArtifactLayout  #: its models/ and circuits/ (the project's own layout when artifacts = '')
    attesters: tuple[str, ...]  #: attester service URLs asked to sign its windows
    asset: str  #: label of the asset its vault moves


def markets(config: SentinelConfig, layout: ArtifactLayout) -> list[Market]:
    """Every configured market in file order (one ``default`` market without ``[markets.<name>]`` tables): feed
    relative to the project root ('' = data.feed), artifact set ('' = the project's own; a missing directory is
    a ConfigError), attesters (empty = relay.attesters)."""
    found = []
    for m in config.markets:
        own = layout
        if m.artifacts:
            own = ArtifactLayout(layout.root / Path(m.artifacts).expanduser())
            if not own.root.is_dir():
                raise ConfigError(f"[markets.{m.name}] artifacts: {own.root} is not a directory (an artifact set "
                                  "laid out like a project root, as `sentinel onboard` writes)")
        found.append(Market(m.name, layout.feed(m.feed or config.data.feed), own,
                            m.attesters or config.relay.attesters, m.asset))
    return found


def pick(names: list[str], name: str | None, where: str) -> str:
    """The market ``name`` among ``names``; without one, the only market or the one called ``default``; else a
    ConfigError naming them (``where`` says what lists them)."""
    if name is not None:
        if name not in names:
            raise ConfigError(f"no market '{name}' in {where} (markets: {', '.join(names)})")
        return name
    if len(names) == 1:
        return names[0]
    if DEFAULT_MARKET in names:
        return DEFAULT_MARKET
    raise ConfigError(f"{where} has {len(names)} markets ({', '.join(names)}): name one with --market")


def market(config: SentinelConfig, layout: ArtifactLayout, name: str | None = None) -> Market:
    """The market ``name``, or the only/default one (see :func:`pick`)."""
    every = markets(config, layout)
    chosen = pick([m.name for m in every], name, "the configuration")
    return next(m for m in every if m.name == chosen)
