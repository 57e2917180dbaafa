"""Decoding ``SentinelBreaker.submit`` calldata (pure: eth-abi only).

The auditor takes proof, instances, attestation and signatures from the
transaction's own input, not from any file the operator publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBMIT_SIGNATURE = "submit(bytes,uint256[],(uint64,uint64,uint256),bytes[])"
SUBMIT_TYPES = ["bytes", "uint256[]", "(uint64,uint64,uint256)", "bytes[]"]


class CalldataError(ValueError):
    """The input is not a well-formed ``submit`` call."""


@dataclass(frozen=True)
class SubmitCall:
    """The arguments of one ``submit`` transaction."""

    proof: bytes
    instances: tuple[int, ...]
    window_id: int
    window_end: int
    input_hash: int
    signatures: tuple[bytes, ...]


def submit_selector() -> bytes:
    """The 4-byte selector of ``submit``."""
    from eth_utils.crypto import keccak

    return keccak(text=SUBMIT_SIGNATURE)[:4]


def decode_submit(data: bytes) -> SubmitCall:
    """Arguments of a ``submit`` call; CalldataError if ``data`` is another call or malformed."""
    from eth_abi.abi import decode
    from eth_abi.exceptions import DecodingError

    data = bytes(data)
    if data[:4] != submit_selector():
        raise CalldataError(f"selector 0x{data[:4].hex()} is not submit's 0x{submit_selector().hex()}")
    try:
        proof, instances, (wid, end, input_hash), signatures = decode(SUBMIT_TYPES, data[4:])
    except (DecodingError, ValueError, OverflowError) as exc:
        raise CalldataError(f"malformed submit calldata: {exc}") from exc
    return SubmitCall(bytes(proof), tuple(int(i) for i in instances), int(wid), int(end), int(input_hash),
                      tuple(bytes(s) for s in signatures))
