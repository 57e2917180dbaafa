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


def witness_scores(witness: dict[str, Any]) -> list[float]:
    """Every output's (rescaled) risk score from a witness, in output order (the batch circuit has K)."""
    try:
        return [float(out[0]) for out in witness["pretty_elements"]["rescaled_outputs"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CircuitError("witness has no rescaled outputs") from exc


def witness_input_hashes(witness: dict[str, Any]) -> list[str]:
    """The Poseidon hash of every hashed input, in input order, as EZKL's little-endian hex."""
    try:
        return [str(h) for h in witness["processed_inputs"]["poseidon_hash"]]
    except (KeyError, TypeError) as exc:
        raise CircuitError("witness has no Poseidon input hashes (is the input visibility 'hashed'?)") from exc
