"""The public-instance layout of Sentinel's circuit (pure).

EZKL orders public instances as: the Poseidon hash of each *hashed* input,
then each *public* input's elements, then each *public* output's elements.
Sentinel's circuit has one input (the 50 x 4 window, hashed) and one output
(the risk score, public), so ``instances[0]`` is::

    [ input_hash, score ]

``input_hash`` is Poseidon over the window's quantised felts (row-major: row
0 blr, buy, sell, price, row 1 ...), and ``score`` is the sigmoid output as a
fixed-point felt at ``score_scale`` (score = felt / 2**score_scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod
from typing import Any

from sentinel.errors import CircuitError

#: Where each public value sits in ``instances[0]``. The breaker is compiled for
#: exactly this layout (``contracts/SentinelBreaker.sol``); a circuit whose
#: settings give another one cannot be deployed (:meth:`InstanceLayout.is_breakers`).
INPUT_HASH_INDEX = 0
SCORE_INDEX = 1
NUM_INSTANCES = 2


@dataclass(frozen=True)
class InstanceLayout:
    """Where each public value sits in ``instances[0]``."""

    input_hash_index: int
    score_index: int
    score_scale: int
    input_scale: int
    total: int

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> InstanceLayout:
        """The layout a circuit manifest records under ``instances`` (see :meth:`to_dict`)."""
        return cls(**{k: v for k, v in entry.items() if k != "description"})

    def is_breakers(self) -> bool:
        """True if this is the layout the breaker is compiled for."""
        return (self.input_hash_index, self.score_index, self.total) == (INPUT_HASH_INDEX, SCORE_INDEX, NUM_INSTANCES)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["description"] = (
            f"instances[0][{self.input_hash_index}] = Poseidon hash of the quantised window "
            f"(scale {self.input_scale}); "
            f"instances[0][{self.score_index}] = risk score felt, score = felt / 2^{self.score_scale}"
        )
        return out


def instance_layout(settings: dict[str, Any]) -> InstanceLayout:
    """Derive the layout from EZKL's ``settings.json``; refuse any other visibility."""
    run = settings["run_args"]
    if not isinstance(run.get("input_visibility"), dict) or "Hashed" not in run["input_visibility"]:
        raise CircuitError(f"circuit input visibility is {run.get('input_visibility')!r}; Sentinel needs 'hashed'")
    if run.get("output_visibility") != "Public":
        raise CircuitError(f"circuit output visibility is {run.get('output_visibility')!r}; Sentinel needs 'public'")
    shapes = settings.get("model_instance_shapes") or []
    outputs = sum(prod(shape) for shape in shapes)
    if outputs != 1:
        raise CircuitError(f"circuit has {outputs} public output values; Sentinel's model has exactly one")
    hashes = len(settings.get("model_input_scales") or [])
    return InstanceLayout(
        input_hash_index=0,
        score_index=hashes,
        score_scale=int(settings["model_output_scales"][0]),
        input_scale=int(settings["model_input_scales"][0]),
        total=hashes + outputs,
    )
