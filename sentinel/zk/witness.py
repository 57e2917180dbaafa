"""Reading EZKL witnesses (pure)."""

from __future__ import annotations

from typing import Any

from sentinel.errors import CircuitError


def witness_score(witness: dict[str, Any]) -> float:
    """The circuit's (rescaled) risk score from a witness."""
    try:
        return float(witness["pretty_elements"]["rescaled_outputs"][0][0])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CircuitError("witness has no rescaled output") from exc


def witness_input_hash(witness: dict[str, Any]) -> str:
    """The Poseidon hash of the hashed input, as EZKL's little-endian hex."""
    try:
        return str(witness["processed_inputs"]["poseidon_hash"][0])
    except (KeyError, IndexError, TypeError) as exc:
        raise CircuitError("witness has no Poseidon input hash (is the input visibility 'hashed'?)") from exc
