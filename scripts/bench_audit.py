"""Audit speed bench: prints JSON (see sentinel/audit/bench.py).

    python scripts/bench_audit.py --reports 1000 [--proofs 10] [--project DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main() -> None:
    from sentinel.audit.bench import bench_audit, tiny_project

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--proofs", type=int, default=10, help="distinct proven windows the reports cycle through")
    parser.add_argument("--project", type=Path, default=None,
                        help="tiny project to reuse (trained and built there if missing)  [default: a temp dir]")
    args = parser.parse_args()

    def say(step: str, detail: str) -> None:
        print(f"[{step}] {detail}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as tmp:
        project = tiny_project(args.project or Path(tmp) / "tiny", say)
        print(json.dumps(bench_audit(project, args.reports, args.workers, say, args.proofs), indent=2))


if __name__ == "__main__":
    main()
