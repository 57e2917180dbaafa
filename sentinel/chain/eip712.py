"""EIP-712 typed data for attestations (pure).

Domain: ``name = "SentinelBreaker"``, ``version = "1"``, the chain id and the
breaker's address (``verifyingContract``), so a signature is good for one
breaker on one chain only. Type: ``Attestation(uint64 windowId, uint64
windowEnd, uint256 inputHash)``. The digest is computed here by hand (and
checked against eth-account in the tests) and signed with eth-account.
"""

from __future__ import annotations

from typing import Any

from sentinel.chain.encoding import AttestationMessage

DOMAIN_NAME = "SentinelBreaker"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ATTESTATION_TYPE = "Attestation(uint64 windowId,uint64 windowEnd,uint256 inputHash)"

TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Attestation": [
        {"name": "windowId", "type": "uint64"},
        {"name": "windowEnd", "type": "uint64"},
        {"name": "inputHash", "type": "uint256"},
    ],
}


def typed_data(chain_id: int, breaker: str, message: AttestationMessage) -> dict[str, Any]:
    """The full EIP-712 document (what a wallet shows and eth-account signs)."""
    return {
        "types": TYPES,
        "primaryType": "Attestation",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": breaker},
        "message": message.to_dict(),
    }


def _keccak(data: bytes) -> bytes:
    from eth_utils.crypto import keccak

    return keccak(data)


def domain_separator(chain_id: int, breaker: str) -> bytes:
    """keccak256(abi.encode(DOMAIN_TYPEHASH, name hash, version hash, chainId, breaker))."""
    from eth_abi.abi import encode

    return _keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [_keccak(DOMAIN_TYPE.encode()), _keccak(DOMAIN_NAME.encode()), _keccak(DOMAIN_VERSION.encode()),
         chain_id, breaker],
    ))


def struct_hash(message: AttestationMessage) -> bytes:
    """keccak256(abi.encode(ATTESTATION_TYPEHASH, windowId, windowEnd, inputHash))."""
    from eth_abi.abi import encode

    return _keccak(encode(["bytes32", "uint64", "uint64", "uint256"],
                          [_keccak(ATTESTATION_TYPE.encode()), *message.as_tuple()]))


def digest(chain_id: int, breaker: str, message: AttestationMessage) -> bytes:
    """The 32 bytes an attester signs: keccak256(0x1901 || domainSeparator || structHash)."""
    return _keccak(b"\x19\x01" + domain_separator(chain_id, breaker) + struct_hash(message))


def sign(private_key: str, chain_id: int, breaker: str, message: AttestationMessage) -> tuple[str, bytes]:
    """Sign with eth-account; returns (signer address, 65-byte r || s || v)."""
    from eth_account import Account

    signed = Account.sign_typed_data(private_key, full_message=typed_data(chain_id, breaker, message))
    return Account.from_key(private_key).address, bytes(signed.signature)


def recover(signature: bytes, chain_id: int, breaker: str, message: AttestationMessage) -> str:
    """The address that produced ``signature`` over this attestation."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    # Account's methods are untyped (eth-utils' combomethod); recover_message returns the checksummed address.
    return str(Account.recover_message(encode_typed_data(full_message=typed_data(chain_id, breaker, message)),
                                       signature=signature))
