"""Revert data -> custom error name and arguments, from contract ABIs (pure).

Solidity reverts with ``selector || abi.encode(args)``; the selector is the
first four bytes of keccak256 of the error's signature. ``Error(string)`` and
``Panic(uint256)`` are built in; empty data (the Halo2 verifier's
``revert(0, 0)``) has no name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_BUILTIN = {
    bytes.fromhex("08c379a0"): ("Error", ["string"], ["message"]),
    bytes.fromhex("4e487b71"): ("Panic", ["uint256"], ["code"]),
}


def _type(entry: dict[str, Any]) -> str:
    """Canonical ABI type of an input (tuples spelled out)."""
    kind: str = entry["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in entry["components"]) + ")" + kind[len("tuple"):]
    return kind


@dataclass(frozen=True)
class DecodedRevert:
    """A decoded revert: error name and named arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name}(" + ", ".join(f"{k}={v}" for k, v in self.args.items()) + ")"


def error_table(abis: Iterable[list[dict[str, Any]]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector -> (name, types, argument names) for every custom error in ``abis``."""
    from eth_utils.crypto import keccak

    table = dict(_BUILTIN)
    for abi in abis:
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [_type(i) for i in entry.get("inputs", [])]
            names = [i.get("name") or f"arg{n}" for n, i in enumerate(entry.get("inputs", []))]
            selector = keccak(f"{entry['name']}({','.join(types)})".encode())[:4]
            table[selector] = (entry["name"], types, names)
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def decode_revert(data: bytes | str | None, table: dict[bytes, tuple[str, list[str], list[str]]]) -> DecodedRevert:
    """Name and arguments of a revert; unknown selectors and bad payloads say so instead of failing."""
    if isinstance(data, str):
        text = data[2:] if data.startswith("0x") else data
        try:
            data = bytes.fromhex(text)
        except ValueError:
            return DecodedRevert("UnknownRevert", {"data": data})
    if not data:
        return DecodedRevert("EmptyRevert")
    spec = table.get(bytes(data[:4]))
    if spec is None:
        return DecodedRevert("UnknownRevert", {"data": "0x" + bytes(data).hex()})
    name, types, names = spec
    from eth_abi.abi import decode
    from eth_abi.exceptions import DecodingError

    try:
        values = decode(types, bytes(data[4:]))
    except (DecodingError, ValueError, OverflowError):
        return DecodedRevert(name, {"data": "0x" + bytes(data[4:]).hex()})
    from eth_utils.address import to_checksum_address

    args = {n: to_checksum_address(v) if t == "address" else _plain(v)
            for n, t, v in zip(names, types, values, strict=True)}
    return DecodedRevert(name, args)
