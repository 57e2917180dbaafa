"""What the breaker reads and writes, in Python (pure).

Mirrors ``contracts/SentinelBreaker.sol``: the felt -> WAD score conversion,
WAD thresholds, and the arguments of ``submit`` built from a proof bundle and
an attestation (the instance layout is :mod:`sentinel.zk.layout`'s). No I/O
beyond reading the JSON files handed in; no web3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from sentinel.errors import ArtifactFieldError, CircuitError
from sentinel.zk.instances import felt_from_hex, signed
from sentinel.zk.layout import INPUT_HASH_INDEX, NUM_INSTANCES, SCORE_INDEX

#: 1.0 as the breaker's fixed point (risk scores and thresholds are WAD).
WAD = 10**18
#: Largest score scale the breaker converts exactly (1e18 = 2^18 * 5^18).
MAX_SCORE_SCALE = 18
_SCORE_CLAMP = 1 << 128


def score_wad(felt: int, scale: int) -> int:
    """The breaker's decoding of a score felt: signed (felt > R/2 is negative), to WAD, truncated to zero."""
    value = max(-_SCORE_CLAMP, min(_SCORE_CLAMP, signed(felt)))
    numerator = value * WAD
    quotient = abs(numerator) >> scale  # Solidity's signed division truncates towards zero
    return quotient if numerator >= 0 else -quotient


def to_wad(x: float) -> int:
    """A probability as WAD, from its shortest decimal form (0.98 -> 980000000000000000)."""
    return int((Decimal(repr(float(x))) * WAD).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_wad(value: int) -> float:
    """WAD back to a float."""
    return value / WAD


@dataclass(frozen=True)
class ProofBundle:
    """The parts of a ``proofs/window-<id>.json`` bundle the chain needs."""

    path: Path
    window_id: int
    window_end_unix: int
    input_hash: int
    score: float
    score_scale: int
    instances: tuple[int, ...]
    proof: bytes
    vk_sha256: str
    verifier_runtime_sha256: str

    @property
    def score_felt(self) -> int:
        return self.instances[SCORE_INDEX]


def _field(doc: dict[str, Any], path: Path, name: str, kind: type | tuple[type, ...]) -> Any:
    node: Any = doc
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ArtifactFieldError(path, name, "missing")
        node = node[part]
    if not isinstance(node, kind) or isinstance(node, bool):
        raise ArtifactFieldError(path, name, f"expected {getattr(kind, '__name__', kind)}, got {type(node).__name__}")
    return node


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or malformed file names itself."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactFieldError(path, "(file)", f"no such {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactFieldError(path, "(file)", f"unreadable {what}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ArtifactFieldError(path, "(file)", f"a {what} must be a JSON object")
    return doc


def _proof_parts(doc: dict[str, Any], path: Path) -> tuple[tuple[int, ...], bytes]:
    """The instances (``instances[0]``) and proof bytes of a bundle's ``ezkl_proof``."""
    raw_instances = _field(doc, path, "ezkl_proof.instances", list)
    if len(raw_instances) != 1 or not isinstance(raw_instances[0], list):
        raise ArtifactFieldError(path, "ezkl_proof.instances", "expected one list of instances")
    try:
        instances = tuple(felt_from_hex(str(x)) for x in raw_instances[0])
    except CircuitError as exc:
        raise ArtifactFieldError(path, "ezkl_proof.instances", f"not EZKL felts: {exc}") from None
    hex_proof = _field(doc, path, "ezkl_proof.hex_proof", str)
    try:
        proof = bytes.fromhex(hex_proof[2:] if hex_proof.startswith("0x") else hex_proof)
    except ValueError:
        raise ArtifactFieldError(path, "ezkl_proof.hex_proof", "not hex") from None
    if not proof:
        raise ArtifactFieldError(path, "ezkl_proof.hex_proof", "empty proof")
    return instances, proof


def read_bundle(path: Path) -> ProofBundle:
    """Load and cross-check a proof bundle: instances, proof hex, hash and window fields."""
    path = Path(path)
    doc = read_json(path, "proof bundle")
    instances, proof = _proof_parts(doc, path)
    if len(instances) != NUM_INSTANCES:
        raise ArtifactFieldError(path, "ezkl_proof.instances",
                                 f"{len(instances)} instances; the breaker takes [input_hash, score]")
    try:
        input_hash = int(_field(doc, path, "input_hash", str), 16)
    except ValueError:
        raise ArtifactFieldError(path, "input_hash", "not a hex number") from None
    if input_hash != instances[INPUT_HASH_INDEX]:
        raise ArtifactFieldError(path, "input_hash", "differs from the proof's input-hash instance")
    scale = _field(doc, path, "score_scale", int)
    if not 0 <= scale <= MAX_SCORE_SCALE:
        raise ArtifactFieldError(path, "score_scale", f"{scale} is outside 0..{MAX_SCORE_SCALE}")
    return ProofBundle(
        path=path,
        window_id=_field(doc, path, "window_id", int),
        window_end_unix=_field(doc, path, "window_end_unix", int),
        input_hash=input_hash,
        score=float(_field(doc, path, "score", (int, float))),
        score_scale=scale,
        instances=instances,
        proof=proof,
        vk_sha256=_field(doc, path, "model.vk_sha256", str),
        verifier_runtime_sha256=_field(doc, path, "model.verifier_runtime_sha256", str),
    )


@dataclass(frozen=True)
class AttestationMessage:
    """What attesters sign (EIP-712 ``Attestation``), bound to one breaker on one chain by the domain."""

    window_id: int
    window_end: int
    input_hash: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.window_id, self.window_end, self.input_hash)

    def to_dict(self) -> dict[str, int]:
        return {"windowId": self.window_id, "windowEnd": self.window_end, "inputHash": self.input_hash}


@dataclass(frozen=True)
class SignedAttestation:
    """An attestation with its domain and signatures (signer address, 65-byte r||s||v)."""

    message: AttestationMessage
    chain_id: int
    breaker: str
    signatures: tuple[tuple[str, bytes], ...]

    def ordered_signatures(self) -> list[bytes]:
        """Signatures sorted by signer address, as the breaker requires (distinct, ascending)."""
        return [sig for _, sig in sorted(self.signatures, key=lambda item: int(item[0], 16))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": {"chainId": self.chain_id, "verifyingContract": self.breaker},
            "message": {**self.message.to_dict(), "inputHash": f"0x{self.message.input_hash:064x}"},
            "signatures": [{"signer": a, "signature": "0x" + s.hex()} for a, s in self.signatures],
        }


def read_attestation(path: Path) -> SignedAttestation:
    """Load an attestation file written by ``sentinel attest``."""
    path = Path(path)
    doc = read_json(path, "attestation")
    message = AttestationMessage(
        window_id=_field(doc, path, "message.windowId", int),
        window_end=_field(doc, path, "message.windowEnd", int),
        input_hash=int(_field(doc, path, "message.inputHash", str), 16),
    )
    signatures = []
    for i, item in enumerate(_field(doc, path, "signatures", list)):
        if not isinstance(item, dict) or not isinstance(item.get("signer"), str) \
                or not isinstance(item.get("signature"), str):
            raise ArtifactFieldError(path, f"signatures[{i}]", "expected {signer, signature}")
        try:
            sig = bytes.fromhex(item["signature"].removeprefix("0x"))
        except ValueError:
            raise ArtifactFieldError(path, f"signatures[{i}].signature", "not hex") from None
        signatures.append((item["signer"], sig))
    return SignedAttestation(message, _field(doc, path, "domain.chainId", int),
                             _field(doc, path, "domain.verifyingContract", str), tuple(signatures))


def message_for(bundle: ProofBundle) -> AttestationMessage:
    """The attestation message of a bundle's window."""
    return AttestationMessage(bundle.window_id, bundle.window_end_unix, bundle.input_hash)


def submit_args(bundle: ProofBundle, attestation: SignedAttestation, quorum: int | None = None,
                ) -> tuple[bytes, list[int], tuple[int, int, int], list[bytes]]:
    """``submit(proof, instances, attestation, signatures)`` arguments, in ABI order.

    With ``quorum``, only that many signatures are sent (the lowest signer
    addresses): each extra one costs gas and adds nothing.
    """
    signatures = attestation.ordered_signatures()
    if quorum is not None:
        signatures = signatures[:quorum]
    return (bundle.proof, list(bundle.instances), attestation.message.as_tuple(), signatures)


@dataclass(frozen=True)
class BatchWindow:
    """One window of a batch bundle, as the breaker attests it."""

    window_id: int
    window_end_unix: int
    input_hash: int
    score: float


@dataclass(frozen=True)
class BatchBundle:
    """The parts of a ``proofs/batch-<first>-<last>.json`` bundle the chain needs: K windows, one proof.

    Instances are the batch circuit's: the K input hashes, then the K score felts, windows in order.
    """

    path: Path
    windows: tuple[BatchWindow, ...]
    score_scale: int
    instances: tuple[int, ...]
    proof: bytes
    vk_sha256: str
    verifier_runtime_sha256: str

    @property
    def size(self) -> int:
        return len(self.windows)

    @property
    def score_felts(self) -> tuple[int, ...]:
        return self.instances[self.size:]


def read_batch_bundle(path: Path) -> BatchBundle:
    """Load and cross-check a batch bundle: K windows, 2K instances, each window's hash its instance."""
    path = Path(path)
    doc = read_json(path, "batch proof bundle")
    if doc.get("kind") != "batch":
        raise ArtifactFieldError(path, "kind", f"{doc.get('kind')!r}; a batch bundle says \"batch\"")
    k = _field(doc, path, "windows_per_proof", int)
    entries = _field(doc, path, "windows", list)
    if k < 2 or len(entries) != k:
        raise ArtifactFieldError(path, "windows", f"{len(entries)} windows for windows_per_proof {k} (2 or more)")
    instances, proof = _proof_parts(doc, path)
    if len(instances) != 2 * k:
        raise ArtifactFieldError(path, "ezkl_proof.instances",
                                 f"{len(instances)} instances; a batch of {k} takes {2 * k} (hashes, then scores)")
    windows = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ArtifactFieldError(path, f"windows[{i}]", "expected an object")
        try:
            try:
                input_hash = int(_field(entry, path, "input_hash", str), 16)
            except ValueError:
                raise ArtifactFieldError(path, "input_hash", "not a hex number") from None
            if input_hash != instances[i]:
                raise ArtifactFieldError(path, "input_hash", f"differs from the proof's instance {i}")
            windows.append(BatchWindow(_field(entry, path, "window_id", int),
                                       _field(entry, path, "window_end_unix", int), input_hash,
                                       float(_field(entry, path, "score", (int, float)))))
        except ArtifactFieldError as exc:  # name the window: windows[i].field
            raise ArtifactFieldError(path, f"windows[{i}].{exc.field}", exc.problem) from None
    scale = _field(doc, path, "score_scale", int)
    if not 0 <= scale <= MAX_SCORE_SCALE:
        raise ArtifactFieldError(path, "score_scale", f"{scale} is outside 0..{MAX_SCORE_SCALE}")
    return BatchBundle(path, tuple(windows), scale, instances, proof, _field(doc, path, "model.vk_sha256", str),
                       _field(doc, path, "model.verifier_runtime_sha256", str))


def messages_for_batch(bundle: BatchBundle) -> list[AttestationMessage]:
    """The attestation message of each window of a batch, in order."""
    return [AttestationMessage(w.window_id, w.window_end_unix, w.input_hash) for w in bundle.windows]


def submit_batch_args(bundle: BatchBundle, attestations: list[SignedAttestation], quorum: int | None = None,
                      ) -> tuple[bytes, list[int], list[tuple[int, int, int]], list[list[bytes]]]:
    """``submitBatch(proof, instances, attestations, signatures)`` arguments, in ABI order: one signed
    attestation per window, in the batch's order (each cut to ``quorum`` signatures, as :func:`submit_args`)."""
    if len(attestations) != bundle.size:
        raise ArtifactFieldError(bundle.path, "windows", f"{bundle.size} windows but {len(attestations)} attestations")
    signatures = [a.ordered_signatures()[:quorum] if quorum is not None else a.ordered_signatures()
                  for a in attestations]
    return (bundle.proof, list(bundle.instances), [a.message.as_tuple() for a in attestations], signatures)
