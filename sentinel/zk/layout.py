"""The public-instance layout of Sentinel's circuit (pure).

EZKL orders public instances as: the Poseidon hash of each *hashed* input,
then each *public* input's elements, then each *public* output's elements.
Sentinel's circuit has one input (the 50 x 4 window, hashed) and one output
(the risk score, public), so ``instances[0]`` is::

    [ input_hash, score ]

``input_hash`` is Poseidon over the window's quantised felts (row-major: row
0 blr, buy, sell, price, row 1 ...), and ``score`` is the sigmoid output as a
fixed-point felt at ``score_scale`` (score = felt / 2**score_scale).

The batch circuit (K windows in one proof, ``circuits/batch``) follows the
same rule with K hashed inputs and K outputs::

    [ hash_0, ..., hash_{K-1}, score_0, ..., score_{K-1} ]

(:class:`BatchInstanceLayout`; the build checks it against a real proof's
instances and witness).
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


@dataclass(frozen=True)
class BatchInstanceLayout:
    """Where each public value sits in a batch circuit's ``instances[0]`` (K windows in one proof).

    The batch circuit is K copies of the model side by side, inputs
    ``window_0..window_{K-1}`` each hashed, outputs ``risk_0..risk_{K-1}``
    public. EZKL puts every hash before every output, each group in input
    order, so window ``i`` (ascending by id) has its hash at ``i`` and its
    score at ``K + i``; ``total`` is ``2K``.
    """

    windows: int
    score_scale: int
    input_scale: int

    @property
    def total(self) -> int:
        return 2 * self.windows

    def hash_index(self, i: int) -> int:
        """Index of window ``i``'s Poseidon input hash."""
        return self._window(i)

    def score_index(self, i: int) -> int:
        """Index of window ``i``'s score felt."""
        return self.windows + self._window(i)

    def _window(self, i: int) -> int:
        if not 0 <= i < self.windows:
            raise CircuitError(f"window {i} is outside the batch of {self.windows}")
        return i

    def split(self, instances: list[str]) -> tuple[list[str], list[str]]:
        """``instances`` -> (hashes, scores), each in window order; a CircuitError if the count is not ``total``."""
        if len(instances) != self.total:
            raise CircuitError(f"{len(instances)} instances, the batch circuit has {self.total} "
                               f"({self.windows} windows)")
        return ([instances[self.hash_index(i)] for i in range(self.windows)],
                [instances[self.score_index(i)] for i in range(self.windows)])

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> BatchInstanceLayout:
        """The layout a batch manifest records under ``instances`` (see :meth:`to_dict`)."""
        layout = cls(windows=int(entry["windows"]), score_scale=int(entry["score_scale"]),
                     input_scale=int(entry["input_scale"]))
        if entry.get("input_hash_indices") != [layout.hash_index(i) for i in range(layout.windows)] or \
                entry.get("score_indices") != [layout.score_index(i) for i in range(layout.windows)]:
            raise CircuitError(f"batch instance layout {entry.get('description')!r} is not the one Sentinel proves")
        return layout

    def to_dict(self) -> dict[str, Any]:
        k = self.windows
        return {
            "windows": k, "score_scale": self.score_scale, "input_scale": self.input_scale, "total": self.total,
            "input_hash_indices": [self.hash_index(i) for i in range(k)],
            "score_indices": [self.score_index(i) for i in range(k)],
            "description": (
                f"instances[0][i] = Poseidon hash of window i's quantised rows (scale {self.input_scale}), "
                f"instances[0][{k}+i] = window i's risk score felt, score = felt / 2^{self.score_scale}; "
                f"i = 0..{k - 1}, windows consecutive and ascending by id"
            ),
        }


def batch_instance_layout(settings: dict[str, Any], windows: int) -> BatchInstanceLayout:
    """Derive the batch layout from the batch circuit's ``settings.json``; refuse anything but K hashes, K scores."""
    run = settings["run_args"]
    if not isinstance(run.get("input_visibility"), dict) or "Hashed" not in run["input_visibility"]:
        raise CircuitError(f"batch circuit input visibility is {run.get('input_visibility')!r}; Sentinel needs "
                           "'hashed'")
    if run.get("output_visibility") != "Public":
        raise CircuitError(f"batch circuit output visibility is {run.get('output_visibility')!r}; Sentinel needs "
                           "'public'")
    input_scales = settings.get("model_input_scales") or []
    output_scales = settings.get("model_output_scales") or []
    shapes = settings.get("model_instance_shapes") or []
    if len(input_scales) != windows or len(set(input_scales)) != 1:
        raise CircuitError(f"batch circuit has input scales {input_scales}; expected {windows} equal ones "
                           "(one hashed window each)")
    if len(shapes) != windows or any(prod(shape) != 1 for shape in shapes) or len(set(output_scales)) != 1 \
            or len(output_scales) != windows:
        raise CircuitError(f"batch circuit has public outputs of shapes {shapes} at scales {output_scales}; "
                           f"expected {windows} single scores at one scale")
    return BatchInstanceLayout(windows=windows, score_scale=int(output_scales[0]), input_scale=int(input_scales[0]))
