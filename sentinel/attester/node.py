"""The attester's own node, read over plain JSON-RPC (no web3): chain id, code, the latest block's time, the
breaker's attester set and verifier.

Short timeouts: a signing request waits on :meth:`Node.block_time`, and a
node that hangs must turn into a prompt 503, not a stuck service. The URL
may carry an API key, so only :attr:`Node.label` (``scheme://host``) is shown.
"""

from __future__ import annotations

from typing import Any

from sentinel.chain import anvil
from sentinel.config import redact_url
from sentinel.errors import ChainError, ChainUnavailable

#: Seconds one JSON-RPC request may take.
TIMEOUT_SECONDS = 5.0


class Node:
    """One JSON-RPC endpoint."""

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url
        self.label = redact_url(url)
        self.timeout = timeout

    def _call(self, method: str, params: list[Any]) -> Any:
        try:
            return anvil.rpc(self.url, method, params, timeout=self.timeout)
        except ChainUnavailable as exc:  # its message names the full URL
            raise ChainUnavailable(self.label, f"{method}: {exc.problem}") from None
        except ChainError as exc:
            raise ChainError(f"{self.label}: {method} failed: {str(exc).rpartition('failed: ')[2]}") from None

    def chain_id(self) -> int:
        return int(self._call("eth_chainId", []), 16)

    def has_code(self, address: str) -> bool:
        return bool(self.code(address))

    def code(self, address: str) -> bytes:
        """The runtime code at ``address`` in the latest block."""
        code = str(self._call("eth_getCode", [address, "latest"]))
        try:
            return bytes.fromhex(code.removeprefix("0x")) if code not in ("", "0x0") else b""
        except ValueError:
            raise ChainError(f"{self.label}: eth_getCode of {address} answered no hex code") from None

    def verifier(self, breaker: str) -> str:
        """The verifier the breaker calls in the latest block (``verifier()``), checksummed."""
        from eth_utils.address import to_checksum_address

        raw = self._view(breaker, "verifier()")
        if len(raw) != 32:
            raise ChainError(f"{self.label}: verifier() of {breaker} answered {len(raw)} bytes, not an address")
        return to_checksum_address(raw[12:])

    def _view(self, contract: str, signature: str) -> bytes:
        """The raw result of calling a no-argument view function at the latest block."""
        from eth_utils.crypto import keccak

        data = "0x" + keccak(text=signature)[:4].hex()
        raw = str(self._call("eth_call", [{"to": contract, "data": data}, "latest"]))
        try:
            return bytes.fromhex(raw.removeprefix("0x"))
        except ValueError:
            raise ChainError(f"{self.label}: {signature} of {contract} answered no hex data") from None

    def block_time(self) -> int:
        """The latest block's timestamp (Unix seconds): the time the breaker's freshness checks will see."""
        block = self._call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict) or "timestamp" not in block:
            raise ChainUnavailable(self.label, "eth_getBlockByNumber answered no block")
        return int(block["timestamp"], 16)

    def attesters(self, breaker: str) -> list[str]:
        """The breaker's registered attesters (``attesters()``), checksummed."""
        from eth_abi.abi import decode
        from eth_abi.exceptions import DecodingError
        from eth_utils.address import to_checksum_address

        raw = self._view(breaker, "attesters()")
        try:
            (addresses,) = decode(["address[]"], raw)
        except (DecodingError, ValueError) as exc:
            raise ChainError(f"{self.label}: attesters() of {breaker} answered no address list ({exc})") from None
        return [to_checksum_address(a) for a in addresses]
