"""Typed configuration, resolved in one place.

Precedence, lowest first: the defaults below < ``sentinel.toml`` in the project
root (or the file named by ``SENTINEL_CONFIG``) < ``SENTINEL_<SECTION>__<FIELD>``
environment variables < explicit overrides (CLI flags). Every field has a
one-line doc in its ``metadata`` so ``sentinel config`` can explain itself.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.errors import ConfigError

CONFIG_FILE_NAME = "sentinel.toml"
ENV_PREFIX = "SENTINEL_"


def _f(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DataConfig:
    """How market-depth files are read and validated."""

    cadence_seconds: float = _f(
        0.0, "expected seconds between rows; 0 infers the median spacing of each file"
    )
    max_gap_factor: float = _f(
        1.5, "a gap longer than this many cadences is an error (scrapers jitter a little)"
    )
    blr_rel_tolerance: float = _f(
        5e-3, "allowed relative gap between blr and buy_volume / sell_volume (rounding)"
    )
    blr_abs_tolerance: float = _f(
        1e-4, "allowed absolute gap between blr and buy_volume / sell_volume (rounding)"
    )


@dataclass(frozen=True)
class SentinelConfig:
    """All of Sentinel's settings."""

    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict of every setting (for ``--json`` and model cards)."""
        return dataclasses.asdict(self)


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(SentinelConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(SentinelConfig)}


def _coerce(value: Any, target: Any, where: str) -> Any:
    """Convert a TOML/env/CLI value to the field's declared type."""
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if target is int:
            if isinstance(value, bool):
                raise ValueError(f"not an integer: {value!r}")
            return int(value)
        if target is float:
            if isinstance(value, bool):
                raise ValueError(f"not a number: {value!r}")
            return float(value)
        if target is str:
            return str(value)
        if target is Path:
            return Path(value)
        origin = typing.get_origin(target)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            (inner, _ellipsis) = typing.get_args(target)
            return tuple(_coerce(item.strip() if isinstance(item, str) else item, inner, where)
                         for item in items if not (isinstance(item, str) and not item.strip()))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    raise ConfigError(f"{where}: unsupported setting type {target!r}")


def _apply(
    values: dict[str, dict[str, Any]], section: str, key: str, raw: Any, where: str
) -> None:
    sections = _sections()
    if section not in sections:
        raise ConfigError(f"{where}: unknown section '{section}' (known: {', '.join(sections)})")
    cls = sections[section]
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if key not in names:
        raise ConfigError(
            f"{where}: unknown setting '{section}.{key}' (known: {', '.join(sorted(names))})"
        )
    values.setdefault(section, {})[key] = _coerce(raw, hints[key], where)


def load_config(
    root: Path,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> SentinelConfig:
    """Resolve defaults < sentinel.toml < SENTINEL_* env < ``overrides``.

    ``overrides`` maps dotted names (``"data.cadence_seconds"``) to values;
    ``None`` values are ignored so unset CLI flags fall through.
    """
    env = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {}

    path = Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else root / CONFIG_FILE_NAME
    if path.exists():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
        for section, table in document.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: '{section}' must be a [table]")
            for key, raw in table.items():
                _apply(values, section, key, raw, f"{path}: [{section}] {key}")
    elif ENV_PREFIX + "CONFIG" in env:
        raise ConfigError(f"{path}: configuration file named by {ENV_PREFIX}CONFIG does not exist")

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        _apply(values, section, key, raw, f"environment {name}")

    for dotted, raw in (overrides or {}).items():
        if raw is None:
            continue
        section, _, key = dotted.partition(".")
        _apply(values, section, key, raw, f"option {dotted}")

    built = {name: cls(**values.get(name, {})) for name, cls in _sections().items()}
    config = SentinelConfig(**built)
    _check(config)
    return config


def _check(config: SentinelConfig) -> None:
    data = config.data
    if data.cadence_seconds < 0:
        raise ConfigError("data.cadence_seconds must be >= 0 (0 infers it from each file)")
    if data.max_gap_factor < 1:
        raise ConfigError("data.max_gap_factor must be >= 1")
    if data.blr_rel_tolerance < 0 or data.blr_abs_tolerance < 0:
        raise ConfigError("data.blr_*_tolerance must be >= 0")


def describe(config: SentinelConfig) -> list[tuple[str, Any, str]]:
    """(dotted name, value, doc) for every setting, in declaration order."""
    rows: list[tuple[str, Any, str]] = []
    for section in dataclasses.fields(config):
        sub = getattr(config, section.name)
        for f in dataclasses.fields(sub):
            rows.append((f"{section.name}.{f.name}", getattr(sub, f.name), f.metadata.get("doc", "")))
    return rows
