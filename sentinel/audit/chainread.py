"""Reading the breaker from a JSON-RPC endpoint: events, transactions, code and state at a block.

All chain I/O of the auditor goes through :class:`BreakerReader`; everything
it returns is plain data (:class:`~sentinel.audit.replay.ChainEvent`,
:class:`~sentinel.audit.replay.Snapshot`, bytes) for the pure checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from sentinel.audit.replay import ChainEvent, Params, Snapshot, State
from sentinel.errors import AuditChainUnavailable, ChainError, ChainUnavailable

if TYPE_CHECKING:
    from eth_typing import HexStr
    from web3.types import BlockIdentifier, FilterParams


class BreakerReader:
    """The breaker at ``address`` on ``rpc_url``, read with the ABI of the published source."""

    def __init__(self, rpc_url: str, address: str, abi: list[dict[str, Any]]) -> None:
        from sentinel.chain.client import Chain

        try:
            self.chain = Chain(rpc_url, [abi])
        except ChainUnavailable as exc:
            raise AuditChainUnavailable(rpc_url, f"RPC unreachable ({exc.problem})") from exc
        except ChainError as exc:
            raise AuditChainUnavailable(rpc_url, f"RPC unusable: {exc}") from exc
        w3 = self.chain.w3
        try:
            self.address = w3.to_checksum_address(address)
        except ValueError as exc:
            raise AuditChainUnavailable(rpc_url, f"'{address}' is not an address") from exc
        self.contract = w3.eth.contract(address=self.address, abi=abi)
        self._events = {}
        for item in abi:
            if item.get("type") == "event":
                self._events[self._topic(item)] = getattr(self.contract.events, item["name"])()
        self._timestamps: dict[int, int] = {}
        if not self.code(self.address):
            raise AuditChainUnavailable(rpc_url, f"no contract at the breaker address {self.address}",
                                        hint="wrong --breaker, or the chain was reset")

    @staticmethod
    def _topic(event_abi: dict[str, Any]) -> bytes:
        from eth_utils.crypto import keccak

        types = ",".join(_abi_type(i) for i in event_abi["inputs"])
        return keccak(text=f"{event_abi['name']}({types})")

    def _io(self, what: str, fn: Callable[[], Any]) -> Any:
        from sentinel.chain.client import web3_errors

        try:
            with web3_errors(what, self.chain.rpc_url, refusals=(ValueError,)):
                return fn()
        except ChainUnavailable as exc:
            raise AuditChainUnavailable(self.chain.rpc_url, exc.problem) from exc
        except ChainError as exc:  # the node refused the request (range limits, no archive state)
            raise AuditChainUnavailable(self.chain.rpc_url, f"the node refused {exc.message}") from exc

    # -- reads ---------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    def head(self) -> int:
        """The latest block number."""
        return int(self._io("eth_blockNumber", lambda: self.chain.w3.eth.block_number))

    def code(self, address: str, block: BlockIdentifier = "latest") -> bytes:
        """Runtime code at ``address`` (as of ``block``)."""
        w3 = self.chain.w3
        return bytes(self._io("eth_getCode", lambda: w3.eth.get_code(w3.to_checksum_address(address), block)))

    def timestamp(self, block: int) -> int:
        """A block's timestamp (cached)."""
        if block not in self._timestamps:
            self._timestamps[block] = int(self._io("eth_getBlockByNumber",
                                                   lambda: self.chain.w3.eth.get_block(block)["timestamp"]))
        return self._timestamps[block]

    def events(self, from_block: int, to_block: int, chunk: int,
               progress: Callable[[int, int], None] | None = None) -> list[ChainEvent]:
        """Every event of the breaker in [from_block, to_block], decoded, in chain order."""
        out: list[ChainEvent] = []
        start = from_block
        while start <= to_block:
            end = min(to_block, start + chunk - 1)
            query: FilterParams = {"address": self.address, "fromBlock": start, "toBlock": end}
            logs = self._io("eth_getLogs", functools.partial(self.chain.w3.eth.get_logs, query))
            for log in logs:
                topics = log.get("topics") or []
                decoder = self._events.get(bytes(topics[0])) if topics else None
                if decoder is None:
                    continue  # not one of the published source's events: cannot be the breaker's doing
                decoded = decoder.process_log(log)
                block = int(log["blockNumber"])
                out.append(ChainEvent(decoded["event"], block, int(log["logIndex"]),
                                      "0x" + bytes(log["transactionHash"]).hex(), self.timestamp(block),
                                      dict(decoded["args"])))
            if progress:
                progress(end - from_block + 1, to_block - from_block + 1)
            start = end + 1
        return sorted(out, key=lambda e: (e.block, e.log_index))

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        """``to``, ``from``, ``input`` and ``block`` of a transaction."""
        tx = self._io("eth_getTransactionByHash", lambda: self.chain.w3.eth.get_transaction(cast("HexStr", tx_hash)))
        return {"to": tx["to"], "from": tx["from"], "input": bytes(tx["input"]), "block": int(tx["blockNumber"])}

    def call_trace(self, tx_hash: str) -> dict[str, Any] | None:
        """A transaction's call tree (``debug_traceTransaction``, built-in ``callTracer``); None if the node has none.

        A node without the debug API or the tracer answers with an error the
        auditor turns into a discrepancy for the reports that needed it; any
        other refusal (pruned state, rate limits) means the audit cannot run.
        """
        from requests.exceptions import HTTPError
        from web3.types import RPCEndpoint

        provider = self.chain.w3.provider

        def request() -> Any:
            try:
                return provider.make_request(RPCEndpoint("debug_traceTransaction"), [tx_hash, {"tracer": "callTracer"}])
            except HTTPError as exc:  # some gateways answer an unknown method with HTTP 4xx and a JSON-RPC error
                body = _json_body(exc)
                if isinstance(body, dict) and isinstance(body.get("error"), dict):
                    return body
                raise

        response = self._io("debug_traceTransaction", request)
        error = response.get("error")
        if error is not None:
            if isinstance(error, dict) and trace_refused(error):
                return None
            message = error.get("message") if isinstance(error, dict) else error
            raise AuditChainUnavailable(self.chain.rpc_url, f"the node refused debug_traceTransaction for {tx_hash}: "
                                                            f"{message}")
        result = response.get("result")
        if not isinstance(result, dict):
            raise AuditChainUnavailable(self.chain.rpc_url, f"debug_traceTransaction for {tx_hash} returned no "
                                                            "call tree", hint="use a node with the built-in callTracer")
        return result

    def snapshot(self, block: BlockIdentifier = "latest") -> Snapshot:
        """The breaker's state, parameters, verifier, attesters and roles as of ``block``."""
        f = self.contract.functions

        def call(fn: Any) -> Any:
            return self._io("eth_call", lambda: fn.call(block_identifier=block))

        last, last_end, tripped_at, high, low, tripped, manual = call(f.state())
        params = Params(*[int(x) for x in call(f.params())])
        return Snapshot(
            state=State(int(last), int(last_end), int(tripped_at), int(high), int(low), bool(tripped), bool(manual)),
            params=params, verifier=call(f.verifier()), score_scale=int(call(f.scoreScale())),
            cadence=int(call(f.cadence())), pending_cadence=int(call(f.pendingCadence())),
            attesters=tuple(call(f.attesters())), governance=call(f.governance()),
            pending_governance=call(f.pendingGovernance()), guardian=call(f.guardian()),
            pending_verifier=call(f.pendingVerifier()), pending_score_scale=int(call(f.pendingScoreScale())),
            pending_verifier_eta=int(call(f.pendingVerifierEta())), batch_verifier=call(f.batchVerifier()),
            batch_windows=int(call(f.batchWindows())),
        )


#: JSON-RPC codes for a method the node does not have (JSON-RPC 2.0; EIP-1474 "method not supported").
_NO_METHOD_CODES = (-32601, -32004)
#: How nodes and gateways word "no such method / tracer here" (geth, reth, Infura, Alchemy, Anvil).
_NO_METHOD_WORDS = ("not found", "not supported", "unsupported", "does not exist", "not available", "not enabled",
                    "unknown method", "method not allowed")


def trace_refused(error: dict[str, Any]) -> bool:
    """Whether a JSON-RPC error to ``debug_traceTransaction`` says the node has no such method or tracer."""
    message = str(error.get("message", "")).lower()
    about_the_method = any(w in message for w in ("method", "tracer", "debug_"))  # not "transaction not found"
    return error.get("code") in _NO_METHOD_CODES or (about_the_method and any(w in message for w in _NO_METHOD_WORDS))


def _json_body(exc: Any) -> Any:
    try:
        return exc.response.json()
    except (AttributeError, ValueError):
        return None


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])
