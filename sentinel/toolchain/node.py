"""Where the pinned npm tools (solc, anvil) live.

They are installed by ``make`` into ``node_modules`` beside ``package.json``
(the repository root). ``SENTINEL_NODE_MODULES`` overrides the location.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sentinel.errors import ChainError

_REPO_ROOT = Path(__file__).resolve().parents[2]


def node_modules() -> Path:
    """The ``node_modules`` directory holding the pinned tools."""
    override = os.environ.get("SENTINEL_NODE_MODULES")
    candidates = [Path(override)] if override else []
    candidates += [_REPO_ROOT / "node_modules", Path.cwd() / "node_modules"]
    for path in candidates:
        if (path / "solc").is_dir():
            return path
    raise ChainError(
        "npm tools not installed: no node_modules with solc found "
        f"(looked in {', '.join(str(c) for c in candidates)})",
        hint="run `make setup` (or `npm install --no-save`) in the repository",
    )


def node() -> str:
    """The ``node`` executable."""
    found = shutil.which("node")
    if not found:
        raise ChainError("node is not installed", hint="install Node.js 20+; the npm tools need it")
    return found


def anvil() -> Path:
    """The pinned Anvil executable: the platform's native binary, else the npm launcher.

    The native binary is preferred because the launcher is a node process that
    forwards signals and exits before Anvil has finished shutting down (and
    dumping its state); with the binary, the pid we hold is Anvil's own.
    """
    modules = node_modules()
    for native in sorted(modules.glob("@foundry-rs/anvil-*/bin/anvil")):
        if os.access(native, os.X_OK):
            return native
    path = modules / ".bin" / "anvil"
    if not path.exists():
        raise ChainError(f"{path}: anvil is not installed", hint="run `make setup`")
    return path
