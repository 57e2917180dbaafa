"""An attester's own check: recompute a window's id, end and input hash from its copy of the rows.

The proof binds the score to ``input_hash``; the attesters bind
``input_hash`` to the market's rows at (windowId, windowEnd). An attester that
signs without recomputing the hash from data it trusts adds nothing, so
``sentinel attest --data FILE`` does this first: cut the window ending at the
bundle's end time from FILE (validated), run the circuit's forward pass
(witness generation, no proving key needed) and compare the Poseidon hash.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sentinel.artifacts import ArtifactLayout, read_json_artifact
from sentinel.chain.encoding import ProofBundle
from sentinel.config import SentinelConfig
from sentinel.errors import ArtifactFieldError, CircuitError


def check_against_rows(layout: ArtifactLayout, config: SentinelConfig, bundle: ProofBundle, data: Path) -> None:
    """Raise unless ``data`` holds the bundle's window: same end time, id and Poseidon input hash."""
    import numpy as np

    from sentinel.data.io import read_market_csv
    from sentinel.data.validate import epoch_seconds
    from sentinel.zk import ezkl_api
    from sentinel.zk.build import input_json
    from sentinel.zk.instances import felt_from_hex
    from sentinel.zk.prove import window_id
    from sentinel.zk.witness import witness_input_hash

    manifest = read_json_artifact(layout.circuit_manifest, "circuit", "sentinel circuit build", CircuitError)
    size, cadence = int(manifest["window"]), float(manifest["cadence_seconds"])
    market = read_market_csv(data, config.data)
    times = np.floor(epoch_seconds(market.frame["timestamp"])).astype(np.int64)
    (ends,) = np.nonzero(times == bundle.window_end_unix)
    if ends.size != 1:
        raise ArtifactFieldError(bundle.path, "window_end_unix",
                                 f"no row of {data} ends the window at {bundle.window_end_unix}")
    end = int(ends[0])
    if end < size - 1:
        raise ArtifactFieldError(bundle.path, "window_end_unix", f"{data} has no complete {size}-row window there")
    if window_id(bundle.window_end_unix, cadence) != bundle.window_id:
        raise ArtifactFieldError(bundle.path, "window_id", f"is not round(window_end_unix / {cadence:g})")
    raw = market.features()[end - size + 1 : end + 1]
    with tempfile.TemporaryDirectory(prefix="sentinel-attest-") as tmp:
        work = Path(tmp)
        (work / "input.json").write_text(json.dumps(input_json(raw[None])))
        witness = ezkl_api.gen_witness(work / "input.json", layout.compiled_circuit, work / "witness.json")
    if felt_from_hex(witness_input_hash(witness)) != bundle.input_hash:
        raise ArtifactFieldError(bundle.path, "input_hash",
                                 f"differs from the Poseidon hash of rows {end - size + 2}..{end + 1} of {data}: "
                                 "refusing to attest")
