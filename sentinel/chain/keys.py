"""Who signs what: private keys from the environment or a keyfile, else Anvil's demo keys.

Keys never appear in messages, logs or ``repr``. Demo keys are the
well-known dev accounts every Anvil derives from its public test mnemonic:
anyone can sign with them, so they are UNSAFE and refused on any chain other
than a local Anvil's.

Environment variables (hex keys): ``SENTINEL_DEPLOYER_KEY`` (deploys, holds
governance), ``SENTINEL_SUBMITTER_KEY`` (sends reports), ``SENTINEL_GUARDIAN_KEY``,
``SENTINEL_VAULT_USER_KEY`` (the demo vault user), ``SENTINEL_RELAY_KEY`` (the relay
daemon's own signer lane, demo account 6), ``SENTINEL_ATTESTER_KEYS``
(comma-separated); attester keys may instead sit in a keyfile, one per line. An attester
service (``sentinel attester serve``) holds one key: ``SENTINEL_ATTESTER_KEY``, a keyfile holding it, or a
demo account.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sentinel.errors import SigningKeyError

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

#: Anvil's default mnemonic (public; the accounts it derives are dev accounts only).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337
#: Demo roles: index of the Anvil dev account that plays each.
DEMO_ACCOUNTS = {"deployer": 0, "submitter": 0, "guardian": 1, "vault_user": 5, "relay": 6}
DEMO_ATTESTERS = (2, 3, 4)
ENV = {"deployer": "SENTINEL_DEPLOYER_KEY", "submitter": "SENTINEL_SUBMITTER_KEY",
       "guardian": "SENTINEL_GUARDIAN_KEY", "vault_user": "SENTINEL_VAULT_USER_KEY", "relay": "SENTINEL_RELAY_KEY"}
ATTESTERS_ENV = "SENTINEL_ATTESTER_KEYS"
ATTESTER_ENV = "SENTINEL_ATTESTER_KEY"


@dataclass(frozen=True)
class Key:
    """A private key with its address; printing it shows only the address and origin."""

    address: ChecksumAddress
    secret: str
    origin: str  #: "env NAME", "keyfile PATH" or "demo account N"

    @property
    def demo(self) -> bool:
        return self.origin.startswith("demo")

    def __repr__(self) -> str:
        return f"Key({self.address}, {self.origin})"

    __str__ = __repr__


def _from_secret(secret: str, origin: str) -> Key:
    from eth_account import Account

    text = secret.strip()
    try:
        account = Account.from_key(text if text.startswith("0x") else "0x" + text)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{origin}: not a valid secp256k1 private key (32 bytes of hex)") from None
    return Key(account.address, account.key.hex() if account.key.hex().startswith("0x") else "0x" + account.key.hex(),
               origin)


@lru_cache(maxsize=16)
def demo_key(index: int) -> Key:
    """Anvil dev account ``index`` (derived from the public mnemonic, m/44'/60'/0'/0/index)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    secret = account.key.hex()
    return Key(account.address, secret if secret.startswith("0x") else "0x" + secret, f"demo account {index}")


def role_key(role: str, chain_id: int, env: Mapping[str, str] | None = None) -> Key:
    """The key for ``role``: its environment variable, else the demo account (local Anvil only)."""
    env = os.environ if env is None else env
    name = ENV[role]
    if env.get(name, "").strip():
        return _from_secret(env[name], f"env {name}")
    require_local(chain_id, f"no {name} set")
    return demo_key(DEMO_ACCOUNTS[role])


def attester_keys(chain_id: int, keyfile: str = "", env: Mapping[str, str] | None = None) -> list[Key]:
    """Attester keys from ``SENTINEL_ATTESTER_KEYS``, else ``keyfile``, else the demo attesters (local only)."""
    env = os.environ if env is None else env
    if env.get(ATTESTERS_ENV, "").strip():
        parts = [p for p in env[ATTESTERS_ENV].split(",") if p.strip()]
        keys = [_from_secret(p, f"env {ATTESTERS_ENV}[{i}]") for i, p in enumerate(parts)]
    elif keyfile:
        keys = _keyfile(Path(keyfile))
    else:
        require_local(chain_id, f"no {ATTESTERS_ENV} and no chain.attester_keyfile")
        return [demo_key(i) for i in DEMO_ATTESTERS]
    if len({k.address for k in keys}) != len(keys):
        raise SigningKeyError("attester keys repeat an address; each attester signs once")
    return keys


def attester_key(chain_id: int, keyfile: str = "", demo_account: int = -1,
                 env: Mapping[str, str] | None = None) -> Key:
    """One attester service's key: ``SENTINEL_ATTESTER_KEY``, else ``keyfile`` (exactly one key), else Anvil
    dev account ``demo_account`` (local chain only)."""
    env = os.environ if env is None else env
    if env.get(ATTESTER_ENV, "").strip():
        return _from_secret(env[ATTESTER_ENV], f"env {ATTESTER_ENV}")
    if keyfile:
        keys = _keyfile(Path(keyfile))
        if len(keys) != 1:
            raise SigningKeyError(f"{keyfile}: an attester service signs with one key, the keyfile holds "
                                  f"{len(keys)}")
        return keys[0]
    if demo_account >= 0:
        require_local(chain_id, f"attester.demo_account {demo_account}")
        return demo_key(demo_account)
    raise SigningKeyError(f"no attester key: set {ATTESTER_ENV}, attester.keyfile (--keyfile) or, on a local "
                          "Anvil, attester.demo_account (--demo-account)")


def _keyfile(path: Path) -> list[Key]:
    try:
        mode = path.stat().st_mode
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read attester keyfile: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{path}: attester keyfile is readable by others", hint=f"chmod 600 {path}")
    keys = [_from_secret(line, f"{path} line {n}") for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise SigningKeyError(f"{path}: attester keyfile holds no keys")
    return keys


def require_local(chain_id: int, why: str) -> None:
    """Demo keys are allowed only on a local Anvil (chain id 31337)."""
    if chain_id != ANVIL_CHAIN_ID:
        raise SigningKeyError(f"{why}, and demo keys are refused on chain {chain_id} (only on a local Anvil, "
                              f"chain {ANVIL_CHAIN_ID})")
