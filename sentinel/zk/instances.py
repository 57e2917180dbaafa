"""Field elements and fixed-point values of EZKL's public instances (pure).

EZKL works in the BN254 scalar field. In ``proof.json`` (and in witnesses)
each felt is a 32-byte *little-endian* hex string. A felt above p/2 stands for
a negative number (p - x means -x), and a fixed-point value at scale ``s`` is
``felt / 2**s``.
"""

from __future__ import annotations

from fractions import Fraction

from sentinel.errors import CircuitError

#: BN254 (alt_bn128) scalar field modulus.
BN254_R = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def felt_from_hex(text: str) -> int:
    """Parse EZKL's little-endian hex felt (``0x``-prefixed or not)."""
    raw = text[2:] if text.startswith(("0x", "0X")) else text
    if len(raw) != 64:
        raise CircuitError(f"felt '{text[:20]}...' is not 32 bytes of hex")
    try:
        value = int.from_bytes(bytes.fromhex(raw), "little")
    except ValueError as exc:
        raise CircuitError(f"felt '{text[:20]}...' is not hex") from exc
    if value >= BN254_R:
        raise CircuitError(f"felt 0x{value:064x} is not below the BN254 scalar field modulus")
    return value


def felt_to_hex(value: int) -> str:
    """EZKL's little-endian hex for a felt, as ``proof.json`` holds it (no ``0x``)."""
    if not 0 <= value < BN254_R:
        raise CircuitError(f"{value} is not a field element")
    return value.to_bytes(32, "little").hex()


def signed(value: int) -> int:
    """The integer a felt stands for: above p/2 means negative."""
    if not 0 <= value < BN254_R:
        raise CircuitError(f"{value} is not a field element")
    return value - BN254_R if value > BN254_R // 2 else value


def fixed_to_float(value: int, scale: int) -> float:
    """Decode a felt as a fixed-point number at ``scale`` (value / 2**scale)."""
    return float(Fraction(signed(value), 1 << scale))
