"""Per-report and whole-run checks (pure): each returns the findings it makes.

Inputs are plain data decoded elsewhere: the Report event, the ``submit``
calldata of its transaction, and the configuration the replay says was in
force at that block.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from sentinel.audit.calldata import SubmitCall
from sentinel.audit.findings import Finding, discrepancy, notice
from sentinel.audit.replay import ChainEvent, ReportContext


def _where(e: ChainEvent) -> dict[str, Any]:
    return {"window_id": int(e.args["windowId"]), "block": e.block, "tx": e.tx}


def check_call(ctx: ReportContext, call: SubmitCall, tx_to: str | None, breaker: str) -> list[Finding]:
    """The calldata is a direct ``submit`` (or ``submitBatch``) to the breaker that carries exactly what the Report
    event says."""
    from sentinel.chain.encoding import score_wad
    from sentinel.errors import CircuitError

    e, a = ctx.event, ctx.event.args
    found = []
    if tx_to is None or tx_to.lower() != breaker.lower():
        found.append(discrepancy("calldata", f"transaction is addressed to {tx_to}, not the breaker", **_where(e)))
    attested = (int(a["windowId"]), int(a["windowEnd"]), int(a["inputHash"]))
    if (call.window_id, call.window_end, call.input_hash) != attested:
        found.append(discrepancy("calldata", "attestation in the calldata differs from the Report event", **_where(e)))
    if call.index is not None and call.batch_size != ctx.batch_windows:
        found.append(discrepancy("calldata", f"a batch of {call.batch_size} windows; the breaker took batches of "
                                             f"{ctx.batch_windows} at block {e.block}", **_where(e)))
    if len(call.instances) != call.expected_instances:
        found.append(discrepancy("calldata", f"{len(call.instances)} instances, the breaker takes "
                                             f"{call.expected_instances}", **_where(e)))
        return found
    if call.hash_instance != call.input_hash:
        found.append(discrepancy("calldata", "proven input hash differs from the attested one", **_where(e)))
    try:
        wad = score_wad(call.score_instance, ctx.score_scale)
    except CircuitError:
        found.append(discrepancy("calldata", "score instance is not a field element", **_where(e)))
        return found
    if wad != int(a["score"]):
        found.append(discrepancy("calldata", f"score instance decodes to {wad} WAD at scale {ctx.score_scale}, "
                                             f"the Report event says {int(a['score'])}", **_where(e)))
    return found


def check_signatures(ctx: ReportContext, call: SubmitCall, chain_id: int, breaker: str) -> list[Finding]:
    """Signatures recover to distinct registered attesters (of the set at that block), ascending, >= quorum."""
    from sentinel.chain import eip712
    from sentinel.chain.encoding import AttestationMessage

    e = ctx.event
    message = AttestationMessage(call.window_id, call.window_end, call.input_hash)
    signers: list[str] = []
    for i, sig in enumerate(call.signatures):
        try:
            signers.append(eip712.recover(sig, chain_id, breaker, message))
        except Exception as exc:  # noqa: BLE001 - eth-account/eth-keys raise several types for malformed signatures
            return [discrepancy("signatures", f"signature {i} does not recover: {type(exc).__name__}", **_where(e))]
    found = []
    strangers = [s for s in signers if s.lower() not in ctx.attesters]
    if strangers:
        found.append(discrepancy("signatures", f"signed by {', '.join(strangers)}, not attester(s) at block {e.block}",
                                 **_where(e)))
    if any(int(b, 16) <= int(a, 16) for a, b in itertools.pairwise(signers)):
        found.append(discrepancy("signatures", "signers are not distinct and ascending", **_where(e)))
    if len(signers) < ctx.quorum:
        found.append(discrepancy("signatures", f"{len(signers)} signature(s), quorum at block {e.block} was "
                                               f"{ctx.quorum}", **_where(e)))
    return found


def check_window_id(e: ChainEvent, cadence: float) -> list[Finding]:
    """``windowId`` is the id of the window ending at ``windowEnd``.

    Ids are derivable from raw rows, so gaps mean something.
    """
    from sentinel.data.windows import window_id

    wid, end = int(e.args["windowId"]), int(e.args["windowEnd"])
    expected = window_id(end, cadence)
    if expected != wid:
        return [discrepancy("window-id", f"window id {wid} is not {expected}, the id of a window ending at {end} "
                                         f"(cadence {cadence:g} s)", **_where(e))]
    return []


def gap_findings(window_ids: Iterable[int], listed: int = 20) -> list[Finding]:
    """One notice per run of window ids nobody reported between the first and the last report (at most ``listed``)."""
    ids = sorted({int(w) for w in window_ids})
    gaps = [(a + 1, b - 1) for a, b in itertools.pairwise(ids) if b - a > 1]
    found = []
    for lo, hi in gaps[:listed]:
        count = hi - lo + 1
        span = f"window {lo}" if count == 1 else f"windows {lo}..{hi}"
        found.append(notice("gaps", f"{span} never reported ({count} window{'s' if count > 1 else ''})", window_id=lo))
    if len(gaps) > listed:
        missing = sum(hi - lo + 1 for lo, hi in gaps[listed:])
        found.append(notice("gaps", f"and {len(gaps) - listed} more gaps ({missing} windows)"))
    return found


def missing_windows(window_ids: Iterable[int]) -> int:
    """How many ids between the lowest and highest reported one were never reported."""
    ids = sorted({int(w) for w in window_ids})
    return (ids[-1] - ids[0] + 1 - len(ids)) if ids else 0
