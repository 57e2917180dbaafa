"""Decoding ``SentinelBreaker.submit``/``submitBatch`` calldata, and finding the call behind each Report (pure:
eth-abi only).

The auditor takes proof, instances, attestation and signatures from the
transaction's own input, not from any file the operator publishes. A report
forwarded through another contract (a smart-contract wallet, a multicall, an
EIP-7702 delegated account) has a transaction whose input is that contract's
call; its ``submit`` call is then found in the transaction's call tree
(``debug_traceTransaction`` with the built-in ``callTracer``), read through
:class:`CallSource` so this module does no I/O itself. A ``submitBatch``
(K consecutive windows, one proof) is decoded into K :class:`SubmitCall`
entries, one per window, sharing the proof and the instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.audit.replay import ChainEvent

SUBMIT_SIGNATURE = "submit(bytes,uint256[],(uint64,uint64,uint256),bytes[])"
SUBMIT_TYPES = ["bytes", "uint256[]", "(uint64,uint64,uint256)", "bytes[]"]
SUBMIT_BATCH_SIGNATURE = "submitBatch(bytes,uint256[],(uint64,uint64,uint256)[],bytes[][])"
SUBMIT_BATCH_TYPES = ["bytes", "uint256[]", "(uint64,uint64,uint256)[]", "bytes[][]"]


class CalldataError(ValueError):
    """The input is not a well-formed ``submit`` call, or no ``submit`` call behind a Report can be found."""


class TraceUnavailable(CalldataError):
    """A report came through another contract and the node offers no call trace to find its ``submit`` call in."""


@dataclass(frozen=True)
class SubmitCall:
    """One window's report as a call carries it: a ``submit``, or window ``index`` of a ``submitBatch`` of
    ``batch_size`` windows (whose instances are every window's hash, then every window's score)."""

    proof: bytes
    instances: tuple[int, ...]
    window_id: int
    window_end: int
    input_hash: int
    signatures: tuple[bytes, ...]
    index: int | None = None  #: place in a submitBatch (None: a submit)
    batch_size: int = 1

    @property
    def expected_instances(self) -> int:
        """How many instances the breaker takes with this call."""
        from sentinel.zk.layout import NUM_INSTANCES

        return NUM_INSTANCES if self.index is None else 2 * self.batch_size

    @property
    def hash_instance(self) -> int:
        """The proven input hash of this window (the instance count must be checked first)."""
        from sentinel.zk.layout import INPUT_HASH_INDEX

        return self.instances[INPUT_HASH_INDEX if self.index is None else self.index]

    @property
    def score_instance(self) -> int:
        """The proven score felt of this window (the instance count must be checked first)."""
        from sentinel.zk.layout import SCORE_INDEX

        return self.instances[SCORE_INDEX if self.index is None else self.batch_size + self.index]


def _selector(signature: str) -> bytes:
    from eth_utils.crypto import keccak

    return keccak(text=signature)[:4]


def submit_selector() -> bytes:
    """The 4-byte selector of ``submit``."""
    return _selector(SUBMIT_SIGNATURE)


def submit_batch_selector() -> bytes:
    """The 4-byte selector of ``submitBatch``."""
    return _selector(SUBMIT_BATCH_SIGNATURE)


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


def decode_reports(data: bytes) -> list[SubmitCall]:
    """The windows a ``submit`` or ``submitBatch`` call reports, one entry each, in order; CalldataError for any
    other call or malformed calldata."""
    from eth_abi.abi import decode
    from eth_abi.exceptions import DecodingError

    data = bytes(data)
    if data[:4] == submit_selector():
        return [decode_submit(data)]
    if data[:4] != submit_batch_selector():
        raise CalldataError(f"selector 0x{data[:4].hex()} is neither submit's 0x{submit_selector().hex()} nor "
                            f"submitBatch's 0x{submit_batch_selector().hex()}")
    try:
        proof, instances, attestations, signatures = decode(SUBMIT_BATCH_TYPES, data[4:])
    except (DecodingError, ValueError, OverflowError) as exc:
        raise CalldataError(f"malformed submitBatch calldata: {exc}") from exc
    if len(signatures) != len(attestations) or not attestations:
        raise CalldataError(f"submitBatch with {len(attestations)} attestation(s) and {len(signatures)} signature "
                            "list(s)")
    proven = tuple(int(i) for i in instances)
    return [SubmitCall(bytes(proof), proven, int(wid), int(end), int(input_hash), tuple(bytes(x) for x in sigs),
                       index=i, batch_size=len(attestations))
            for i, ((wid, end, input_hash), sigs) in enumerate(zip(attestations, signatures, strict=True))]


# -- the submit call behind a Report ------------------------------------------------


@dataclass(frozen=True)
class CallFrame:
    """One call in a transaction's call tree (a ``callTracer`` frame), addresses lower-case."""

    kind: str  #: CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE, CREATE2, SELFDESTRUCT
    sender: str
    to: str | None
    input: bytes
    undone: bool  #: this call or one of its callers reverted, so its effects and logs were undone
    depth: int  #: 0 for the transaction's own call


def call_frames(trace: Mapping[str, Any]) -> list[CallFrame]:
    """Every call of a ``callTracer`` trace, in execution order; CalldataError if it is not a call tree."""
    out: list[CallFrame] = []
    stack: list[tuple[Any, bool, int]] = [(trace, False, 0)]
    while stack:
        frame, undone, depth = stack.pop()
        try:
            undone = undone or bool(frame.get("error"))
            to = frame.get("to")
            data = frame.get("input") or "0x"
            out.append(CallFrame(str(frame["type"]).upper(), str(frame["from"]).lower(),
                                 str(to).lower() if to else None, bytes.fromhex(data.removeprefix("0x")),
                                 undone, depth))
            children = list(frame.get("calls") or [])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CalldataError(f"the node's call trace is malformed ({type(exc).__name__}: {exc})") from exc
        stack.extend((child, undone, depth + 1) for child in reversed(children))
    return out


def breaker_submits(frames: list[CallFrame], breaker: str) -> list[tuple[CallFrame, SubmitCall]]:
    """The windows of the ``submit``/``submitBatch`` calls that took effect on ``breaker``, in execution order:
    each emitted one Report.

    Only a CALL runs the breaker's code on the breaker's storage (a
    DELEGATECALL runs it on the caller's, a STATICCALL cannot write), and a
    call that was undone left no Report.
    """
    out: list[tuple[CallFrame, SubmitCall]] = []
    for frame in frames:
        if frame.kind != "CALL" or frame.undone or frame.to != breaker.lower():
            continue
        try:
            out.extend((frame, call) for call in decode_reports(frame.input))
        except CalldataError:
            continue  # another function of the breaker (a view through CALL): emits no Report
    return out


class CallSource(Protocol):
    """What :class:`SubmitLocator` reads from the chain (``chainread.BreakerReader`` in an audit)."""

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        """``to``, ``from`` and ``input`` of a transaction."""
        ...

    def call_trace(self, tx_hash: str) -> dict[str, Any] | None:
        """The transaction's ``callTracer`` call tree; None when the node offers none."""
        ...


@dataclass(frozen=True)
class LocatedCall:
    """The ``submit`` call that produced a Report event."""

    call: SubmitCall
    to: str | None  #: whom the call was addressed to
    via: str | None = None  #: None for a direct transaction; else the contract the transaction called


class SubmitLocator:
    """Finds the ``submit`` call behind each Report: the transaction's input, or its call trace when forwarded.

    A transaction addressed to the breaker is a direct ``submit`` and is
    decoded from its input (no trace needed). Any other transaction went
    through another contract: its successful ``submit`` calls to the breaker
    are taken from the trace, and each Report gets the one that carries its
    attestation (window id, end, input hash) from its submitter, so a
    transaction that submits several windows has each matched to its own.
    Transactions and traces are read once each.
    """

    def __init__(self, source: CallSource, breaker: str) -> None:
        self.source = source
        self.breaker = breaker.lower()
        self._txs: dict[str, dict[str, Any]] = {}
        self._submits: dict[str, list[tuple[CallFrame, SubmitCall]] | None] = {}
        self._used: dict[str, set[int]] = {}

    def locate(self, event: ChainEvent) -> LocatedCall:
        """The call behind ``event``; CalldataError (TraceUnavailable without a trace) says why there is none."""
        tx_hash = event.tx
        if tx_hash not in self._txs:
            self._txs[tx_hash] = self.source.transaction(tx_hash)
        tx = self._txs[tx_hash]
        to = tx["to"]
        if to is not None and str(to).lower() == self.breaker:
            try:
                calls = decode_reports(tx["input"])
            except CalldataError as exc:
                raise CalldataError(f"cannot decode a submit call: {exc}") from exc
            wid = int(event.args["windowId"])
            mine = calls if len(calls) == 1 else [c for c in calls if c.window_id == wid]
            if len(mine) != 1:
                raise CalldataError(f"transaction {tx_hash} carries {len(mine)} attestation(s) for window {wid}, "
                                    "whose Report it emitted")
            return LocatedCall(mine[0], to)
        via = str(to) if to is not None else "a contract creation"
        if tx_hash not in self._submits:
            trace = self.source.call_trace(tx_hash)
            self._submits[tx_hash] = None if trace is None else breaker_submits(call_frames(trace), self.breaker)
        submits = self._submits[tx_hash]
        if submits is None:
            raise TraceUnavailable(
                f"report arrived through another contract ({via}) in transaction {tx_hash} and could not be "
                "checked: the node offers no debug_traceTransaction with the callTracer to find its submit call; "
                "audit with a tracing node")
        a = event.args
        attested = (int(a["windowId"]), int(a["windowEnd"]), int(a["inputHash"]))
        submitter = str(a["submitter"]).lower()
        used = self._used.setdefault(tx_hash, set())
        for i, (frame, call) in enumerate(submits):
            if i not in used and frame.sender == submitter and \
                    (call.window_id, call.window_end, call.input_hash) == attested:
                used.add(i)
                return LocatedCall(call, frame.to, via)
        raise CalldataError(
            f"report arrived through another contract ({via}) in transaction {tx_hash}, and none of the "
            f"{len(submits)} submit call(s) to the breaker that took effect in its trace was made by "
            f"{a['submitter']} with this Report's attestation")
