"""Recomputing a window's Poseidon input hash from raw rows, as the circuit does (witness generation).

The proof binds the score to ``input_hash``; the attesters bind
``input_hash`` to the market's rows at (windowId, windowEnd). An attester that
signs without recomputing the hash from data it trusts adds nothing, so
``sentinel attest --data FILE`` does this first: cut the window ending at the
bundle's end time from FILE (validated), run the circuit's forward pass
(witness generation, no proving key needed) and compare the Poseidon hash.
The auditor recomputes reported windows from archived rows the same way.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig
from sentinel.errors import ArtifactFieldError


def circuit_input_hash(compiled: Path, raw: Any) -> int:
    """The Poseidon hash the circuit computes for ``raw``, one window's rows as read, shape (W, 4)."""
    from sentinel.zk import ezkl_api
    from sentinel.zk.build import input_json
    from sentinel.zk.instances import felt_from_hex
    from sentinel.zk.witness import witness_input_hash

    with tempfile.TemporaryDirectory(prefix="sentinel-rows-") as tmp:
        work = Path(tmp)
        (work / "input.json").write_text(json.dumps(input_json(raw[None])))
        witness = ezkl_api.gen_witness(work / "input.json", compiled, work / "witness.json")
    return felt_from_hex(witness_input_hash(witness))


def check_against_rows(layout: ArtifactLayout, config: SentinelConfig, data: Path, *, bundle: Path,
                       window_id: int, window_end_unix: int, input_hash: int) -> None:
    """Raise unless ``data`` holds the window of the bundle at ``bundle``: same end time, id and input hash."""
    import numpy as np

    from sentinel.data.io import read_market_csv
    from sentinel.data.windows import window_id as window_id_of
    from sentinel.zk.manifest import load_manifest

    manifest = load_manifest(layout)
    size, cadence = int(manifest["window"]), float(manifest["cadence_seconds"])
    market = read_market_csv(data, config.data)
    (ends,) = np.nonzero(market.timestamps_unix() == window_end_unix)
    if ends.size != 1:
        raise ArtifactFieldError(bundle, "window_end_unix", f"no row of {data} ends the window at {window_end_unix}")
    end = int(ends[0])
    if end < size - 1:
        raise ArtifactFieldError(bundle, "window_end_unix", f"{data} has no complete {size}-row window there")
    expected = window_id_of(window_end_unix, cadence)
    if expected != window_id:
        raise ArtifactFieldError(bundle, "window_id", f"is not {expected}, the id of a window ending at "
                                                      f"{window_end_unix} (cadence {cadence:g} s)")
    raw = market.features()[end - size + 1 : end + 1]
    if circuit_input_hash(layout.compiled_circuit, raw) != input_hash:
        raise ArtifactFieldError(bundle, "input_hash",
                                 f"differs from the Poseidon hash of rows {end - size + 2}..{end + 1} of {data}: "
                                 "refusing to attest")
