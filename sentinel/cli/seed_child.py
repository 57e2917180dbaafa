"""Child process of ``sentinel bench --against seed``: build and prove the seed architecture once.

``python -m sentinel.cli.seed_child ROOT MODE WORKDIR`` reads ``WORKDIR/window.npy``,
reports each phase on stderr (``phase: NAME``) for the parent's memory guard,
and prints the result as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    import numpy as np

    from sentinel.config import load_config
    from sentinel.errors import SentinelError
    from sentinel.zk.bench import seed_build_and_prove

    root, mode, work = Path(argv[0]), argv[1], Path(argv[2])

    def phase(name: str) -> None:
        print(f"phase: {name}", file=sys.stderr, flush=True)

    try:
        result = seed_build_and_prove(load_config(root), np.load(work / "window.npy"), mode, work, phase)
    except SentinelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
