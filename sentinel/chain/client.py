"""The one seam to web3: connect, deploy, transact, call, read events.

Every JSON-RPC exchange goes through :class:`Chain`, which signs locally with
eth-account (keys never leave the process), estimates gas first so a revert
is caught before anything is sent, and turns web3's exceptions into
:class:`~sentinel.errors.ChainError` leaves, with custom errors decoded to
their names from the contracts' ABIs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentinel.chain.failover import Failover, failover_provider, hide_in_logs
from sentinel.chain.keys import Key
from sentinel.chain.revert import DecodedRevert, decode_revert, error_table
from sentinel.errors import ChainError, ChainUnavailable, ContractRevert
from sentinel.toolchain.solc import CompiledContract

if TYPE_CHECKING:
    from web3.types import BlockIdentifier

#: What a refused connection suggests.
NODE_HINT = "is the node running? `sentinel chain up` starts a local one"
#: HTTP timeout of one JSON-RPC request.
REQUEST_TIMEOUT_SECONDS = 60


@contextmanager
def web3_errors(what: str, rpc_url: str, *, tx_hash: str | None = None,
                errors: dict[bytes, tuple[str, list[str], list[str]]] | None = None,
                receipt_timeout: float | None = None,
                refusals: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """The one translation of web3/requests exceptions raised inside the block into ChainError leaves.

    A transport failure is :class:`ChainUnavailable`; a revert is
    :class:`ContractRevert`, named from ``errors`` (an :func:`error_table` of
    the contracts' ABIs); a receipt that never came, or anything else web3
    raises (and ``refusals``, where web3 reports a node's refusal as a plain
    ``ValueError``), is a :class:`ChainError` naming ``what``. The original is
    always the ``__cause__``, so a caller can still tell e.g.
    ``TransactionNotFound`` apart.
    """
    from requests.exceptions import RequestException
    from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

    other: tuple[type[Exception], ...] = (Web3Exception, *refusals)
    try:
        yield
    except ContractLogicError as exc:
        decoded = decode_revert(exc.data if isinstance(exc.data, str | bytes) else None, errors or {})
        raise ContractRevert(what, decoded.name, decoded.args, tx_hash=tx_hash) from exc
    except TimeExhausted as exc:
        within = f" within {receipt_timeout:g} s" if receipt_timeout is not None else ""
        raise ChainError(f"{what}: no receipt{within} (tx {tx_hash})") from exc
    except RequestException as exc:
        raise ChainUnavailable(rpc_url, f"{what}: {type(exc).__name__}", hint=NODE_HINT) from exc
    except other as exc:
        raise ChainError(f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


class SendOnlyEndpoint:
    """A JSON-RPC endpoint that is only sent raw transactions (a private submission endpoint: Flashbots
    Protect-style RPCs, a builder, an L2 sequencer's): nothing else is asked of it, not even its chain id.

    Its URL may carry an API key (path, query or user part), so only :attr:`label` (``scheme://host``) is
    ever shown, in messages and logs alike.
    """

    def __init__(self, url: str) -> None:
        from web3 import Web3

        from sentinel.config import redact_url

        self.label = redact_url(url)
        # sent once per call: the caller backs off on its own, and a resend after a timeout is idempotent anyway
        provider = Web3.HTTPProvider(url, request_kwargs={"timeout": REQUEST_TIMEOUT_SECONDS},
                                     exception_retry_configuration=None)
        # web3 logs every request's full URI at debug level (`sentinel -v`): this provider's go to a logger
        # that keeps quiet below warnings, so the key in the URL stays out of debug logs too
        quiet = logging.getLogger("sentinel.chain.send_only_endpoint")
        quiet.setLevel(logging.WARNING)
        provider.logger = quiet
        provider._request_session_manager.logger = quiet  # it logs the URI when it caches a session
        hide_in_logs(url)  # urllib3 logs each request's path at debug level
        self.w3 = Web3(provider)

    def send_raw_transaction(self, raw_tx: str) -> None:
        """eth_sendRawTransaction; web3's exceptions propagate (wrap the call in :func:`web3_errors`)."""
        from eth_typing import HexStr

        self.w3.eth.send_raw_transaction(HexStr(raw_tx))


@dataclass(frozen=True)
class Deployed:
    """A contract deployed by :meth:`Chain.deploy`."""

    name: str
    address: str
    tx_hash: str
    block: int
    gas_used: int


class Chain:
    """A JSON-RPC endpoint behind web3, with revert decoding from the given ABIs.

    With ``fallbacks``, ``rpc_url`` and they are endpoints in order of
    preference behind one :mod:`failover <sentinel.chain.failover>` provider:
    a request goes to the first healthy one and to the next on a transport
    failure; :meth:`rpc_status` says how each one is doing.
    """

    def __init__(self, rpc_url: str, abis: Iterable[list[dict[str, Any]]] = (), *,
                 gas_headroom: float = 1.2, receipt_timeout: float = 120.0, fallbacks: Sequence[str] = (),
                 recheck_seconds: float = 15.0, max_lag_blocks: int = 5) -> None:
        from web3 import Web3

        self._url = rpc_url
        self.failover = Failover([rpc_url, *fallbacks], timeout=REQUEST_TIMEOUT_SECONDS,
                                 recheck_seconds=recheck_seconds, max_lag_blocks=max_lag_blocks) if fallbacks else None
        self.w3 = Web3(failover_provider(self.failover) if self.failover else
                       Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": REQUEST_TIMEOUT_SECONDS}))
        self.gas_headroom = gas_headroom
        self.receipt_timeout = receipt_timeout
        self._abis: list[list[dict[str, Any]]] = list(abis)
        self._errors = error_table(self._abis)
        with self._seam("eth_chainId"):
            self.chain_id = int(self.w3.eth.chain_id)

    # -- plumbing -------------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        """The endpoint, for messages; with fallbacks the active one's ``scheme://host``."""
        return self.failover.label if self.failover else self._url

    def rpc_status(self) -> list[dict[str, Any]] | None:
        """Each endpoint's health with fallbacks (:meth:`Failover.status`), else None."""
        return self.failover.status() if self.failover else None

    def add_abi(self, abi: list[dict[str, Any]]) -> None:
        """Decode reverts of this ABI's custom errors too."""
        self._abis.append(abi)
        self._errors = error_table(self._abis)

    def stop_retrying(self) -> None:
        """Send every later request once, for a caller with a backoff of its own (web3 retries failed reads)."""
        from web3 import Web3

        if self.failover:  # it already asks each endpoint once: the next endpoint is the retry
            return
        self.w3.provider = Web3.HTTPProvider(self._url, request_kwargs={"timeout": REQUEST_TIMEOUT_SECONDS},
                                             exception_retry_configuration=None)

    def decode(self, data: bytes | str | None) -> DecodedRevert:
        """Name and arguments of revert data."""
        return decode_revert(data, self._errors)

    @contextmanager
    def _seam(self, what: str, tx_hash: str | None = None) -> Iterator[None]:
        with web3_errors(what, self.rpc_url, tx_hash=tx_hash, errors=self._errors,
                         receipt_timeout=self.receipt_timeout):
            yield

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Any:
        """A web3 contract object at ``address``."""
        return self.w3.eth.contract(address=self.w3.to_checksum_address(address), abi=abi)

    # -- transactions ---------------------------------------------------------------
    def _send(self, tx: dict[str, Any], key: Key, what: str) -> Any:
        tx = dict(tx)
        tx["gas"] = int(tx["gas"] * self.gas_headroom)
        signed = self.w3.eth.account.sign_transaction(tx, key.secret)
        with self._seam(what):
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        hex_hash = "0x" + bytes(tx_hash).hex()
        with self._seam(what, hex_hash):
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout,
                                                               poll_latency=0.05)
        if receipt["status"] != 1:
            raise ContractRevert(what, "RevertedOnChain", {"gas_used": receipt["gasUsed"]}, tx_hash=hex_hash)
        return receipt

    def _base_tx(self, key: Key) -> dict[str, Any]:
        with self._seam("eth_getTransactionCount"):
            nonce = self.w3.eth.get_transaction_count(key.address, "pending")
        return {"from": key.address, "nonce": nonce, "chainId": self.chain_id}

    def deploy(self, compiled: CompiledContract, args: list[Any], key: Key) -> Deployed:
        """Deploy ``compiled`` with constructor ``args``; returns its address and receipt figures."""
        self.add_abi(compiled.abi)
        factory = self.w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
        what = f"deploying {compiled.name}"
        with self._seam(what):
            tx = factory.constructor(*args).build_transaction(self._base_tx(key))
        receipt = self._send(tx, key, what)
        return Deployed(compiled.name, receipt["contractAddress"], "0x" + bytes(receipt["transactionHash"]).hex(),
                        int(receipt["blockNumber"]), int(receipt["gasUsed"]))

    def transact(self, function: Any, key: Key, what: str) -> Any:
        """Estimate (reverts are decoded here, before sending), sign, send, wait; returns the receipt."""
        with self._seam(what):
            tx = function.build_transaction(self._base_tx(key))
        return self._send(tx, key, what)

    def call(self, function: Any, what: str) -> Any:
        """A read-only call, reverts decoded."""
        with self._seam(what):
            return function.call()

    def code(self, address: str) -> bytes:
        """Runtime code at ``address``."""
        with self._seam("eth_getCode"):
            return bytes(self.w3.eth.get_code(self.w3.to_checksum_address(address)))

    def codehash(self, address: str) -> bytes:
        """``extcodehash`` of ``address`` (keccak-256 of its runtime code): what the verifier timelock pins."""
        from eth_utils.crypto import keccak

        return keccak(self.code(address))

    def block(self, number: BlockIdentifier = "latest") -> Any:
        with self._seam("eth_getBlockByNumber"):
            return self.w3.eth.get_block(number)

    def rpc(self, method: str, params: list[Any]) -> Any:
        """A raw JSON-RPC call (Anvil's evm_* helpers in tests and the bench)."""
        from web3.types import RPCEndpoint

        with self._seam(method):
            response = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error'].get('message')}")
        return response["result"]
