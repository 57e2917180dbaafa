"""Auditor parts that need no chain: calldata (direct and from call traces), signatures, gaps, reports, exit codes."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from sentinel.audit import checks
from sentinel.audit.calldata import (
    SUBMIT_BATCH_TYPES,
    SUBMIT_TYPES,
    CalldataError,
    LocatedCall,
    SubmitCall,
    SubmitLocator,
    TraceUnavailable,
    decode_reports,
    decode_submit,
    submit_batch_selector,
    submit_selector,
)
from sentinel.audit.findings import AuditReport, discrepancy, notice
from sentinel.audit.replay import ChainEvent, Params, ReportContext
from sentinel.audit.report import render_text
from sentinel.chain.encoding import AttestationMessage, score_wad
from sentinel.chain.keys import Key, demo_key
from sentinel.zk.layout import SCORE_INDEX

BREAKER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CALL = SubmitCall(b"\x01" * 200, (123, 539), 28930159, 1735689540, 123, (b"\x02" * 65,))


def test_calldata_roundtrip_and_refusals():
    from eth_abi.abi import encode

    data = submit_selector() + encode(SUBMIT_TYPES, [CALL.proof, list(CALL.instances),
                                                     (CALL.window_id, CALL.window_end, CALL.input_hash),
                                                     list(CALL.signatures)])
    assert decode_submit(data) == CALL
    with pytest.raises(CalldataError, match="selector"):
        decode_submit(b"\xde\xad\xbe\xef" + data[4:])
    with pytest.raises(CalldataError, match="malformed"):
        decode_submit(data[:40])


def _ctx(call: SubmitCall, attesters: list[str], quorum: int = 2, score: int | None = None) -> ReportContext:
    args = {"windowId": call.window_id, "windowEnd": call.window_end, "inputHash": call.input_hash,
            "score": score_wad(call.instances[SCORE_INDEX], 10) if score is None else score, "tripped": False}
    event = ChainEvent("Report", 7, 0, "0xabc", 1735689600, args)
    return ReportContext(event, frozenset(a.lower() for a in attesters), quorum, "0x1", 10, Params(), False)


def _signed(keys: list[Key], call: SubmitCall, chain_id: int = 31337) -> SubmitCall:
    from sentinel.chain import eip712

    message = AttestationMessage(call.window_id, call.window_end, call.input_hash)
    pairs = sorted((eip712.sign(k.secret, chain_id, BREAKER, message) for k in keys), key=lambda p: int(p[0], 16))
    return SubmitCall(call.proof, call.instances, call.window_id, call.window_end, call.input_hash,
                      tuple(sig for _, sig in pairs))


def test_call_must_match_its_event():
    assert checks.check_call(_ctx(CALL, []), CALL, BREAKER, BREAKER) == []
    (wrong_score,) = checks.check_call(_ctx(CALL, [], score=1), CALL, BREAKER, BREAKER)
    assert "score instance decodes" in wrong_score.message
    (elsewhere,) = checks.check_call(_ctx(CALL, []), CALL, "0x" + "9" * 40, BREAKER)
    assert "not the breaker" in elsewhere.message


def test_signatures_against_the_set_at_that_block():
    a, b, c = demo_key(2), demo_key(3), demo_key(4)
    call = _signed([a, b], CALL)
    assert checks.check_signatures(_ctx(call, [a.address, b.address, c.address]), call, 31337, BREAKER) == []
    (stranger,) = checks.check_signatures(_ctx(call, [b.address, c.address]), call, 31337, BREAKER)
    assert a.address in stranger.message
    (few,) = checks.check_signatures(_ctx(call, [a.address, b.address], quorum=3), call, 31337, BREAKER)
    assert "quorum" in few.message
    reversed_call = replace(call, signatures=call.signatures[::-1])
    (order,) = checks.check_signatures(_ctx(call, [a.address, b.address]), reversed_call, 31337, BREAKER)
    assert "ascending" in order.message
    other_chain = _signed([a, b], CALL, chain_id=1)
    assert checks.check_signatures(_ctx(call, [a.address, b.address]), other_chain, 31337, BREAKER)


def test_window_id_is_derived_from_the_end_time():
    e = ChainEvent("Report", 1, 0, "0x1", 0, {"windowId": 28930159, "windowEnd": 28930159 * 60})
    assert checks.check_window_id(e, 60.0) == []
    assert checks.check_window_id(e, 30.0)


def test_gaps_are_notices_with_their_ranges():
    found = checks.gap_findings([5, 1, 2, 9, 6])
    assert [f.message for f in found] == ["windows 3..4 never reported (2 windows)",
                                          "windows 7..8 never reported (2 windows)"]
    assert all(f.severity == "notice" for f in found)
    assert checks.gap_findings([1, 2, 3]) == []
    assert checks.missing_windows([1, 4, 10]) == 7
    many = checks.gap_findings(range(0, 100, 2), listed=3)
    assert len(many) == 4 and "46 more gaps (46 windows)" in many[-1].message


def test_exit_code_is_one_only_for_discrepancies():
    report = AuditReport()
    report.tally("proofs").record(ok=True)
    report.add(notice("gaps", "window 3 never reported"))
    assert report.exit_code == 0
    assert "CLEAN: 0 discrepancy(ies), 1 notice(s)" in render_text(report)
    report.add(discrepancy("proofs", "EZKL rejects the proof", window_id=3, block=9, tx="0x" + "ab" * 32))
    assert report.exit_code == 1
    text = render_text(report)
    assert "DISCREPANCIES FOUND" in text and "EZKL rejects the proof" in text
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["clean"] is False and doc["counts"] == {"discrepancy": 1, "notice": 1}


def test_audit_cli_exits_2_when_the_rpc_is_unreachable(run_cli, tmp_path):
    (tmp_path / "circuits").mkdir()
    code, _, err = run_cli("--root", tmp_path, "audit", "--rpc", "http://127.0.0.1:1", "--breaker", BREAKER)
    assert code == 2
    assert "manifest.json" in err and err.startswith("error: ")


# -- reports forwarded through another contract: the submit call comes from the trace ---------------------------

WALLET, FORWARDER, RELAYER = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20


def _data(call: SubmitCall) -> str:
    from eth_abi.abi import encode

    args = [call.proof, list(call.instances), (call.window_id, call.window_end, call.input_hash), list(call.signatures)]
    return "0x" + (submit_selector() + encode(SUBMIT_TYPES, args)).hex()


def _frame(sender: str, to: str, data: str = "0x", kind: str = "CALL", calls: list[dict[str, Any]] | None = None,
           error: str | None = None) -> dict[str, Any]:
    """One callTracer frame, spelled as nodes return them."""
    out: dict[str, Any] = {"type": kind, "from": sender, "to": to, "input": data, "gas": "0x0", "gasUsed": "0x0",
                           "value": "0x0"}
    if calls:
        out["calls"] = calls
    if error:
        out["error"] = error
    return out


def _report(call: SubmitCall, submitter: str, tx: str = "0xf00") -> ChainEvent:
    args = {"windowId": call.window_id, "windowEnd": call.window_end, "inputHash": call.input_hash,
            "score": score_wad(call.instances[SCORE_INDEX], 10), "submitter": submitter, "tripped": False}
    return ChainEvent("Report", 7, 0, tx, 1735689600, args)


class FakeNode:
    """The two reads SubmitLocator makes, from canned transactions and traces (None: a node without the tracer)."""

    def __init__(self, txs: dict[str, dict[str, Any]], traces: dict[str, dict[str, Any] | None]) -> None:
        self.txs, self.traces = txs, traces
        self.reads: list[tuple[str, str]] = []

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        self.reads.append(("tx", tx_hash))
        return self.txs[tx_hash]

    def call_trace(self, tx_hash: str) -> dict[str, Any] | None:
        self.reads.append(("trace", tx_hash))
        return self.traces[tx_hash]


def _tx(to: str | None, data: str = "0x12345678") -> dict[str, Any]:
    return {"to": to, "from": RELAYER, "input": bytes.fromhex(data[2:]), "block": 7}


def test_a_direct_submit_is_decoded_from_the_transaction_without_a_trace():
    node = FakeNode({"0xf00": _tx(BREAKER, _data(CALL))}, {})
    located = SubmitLocator(node, BREAKER).locate(_report(CALL, RELAYER))
    assert located == LocatedCall(CALL, BREAKER, None)
    assert node.reads == [("tx", "0xf00")]
    bad = FakeNode({"0xf00": _tx(BREAKER, "0xdeadbeef" + "00" * 64)}, {})
    with pytest.raises(CalldataError, match="cannot decode a submit call: selector"):
        SubmitLocator(bad, BREAKER).locate(_report(CALL, RELAYER))


def test_a_forwarded_submit_is_found_however_deep_and_only_where_it_took_effect():
    decoy = replace(CALL, proof=b"\x09" * 200)  # same attestation, another proof: must never be the one picked
    breaker = BREAKER.lower()
    trace = _frame(RELAYER, WALLET, "0x12345678", calls=[
        _frame(WALLET, breaker, "0x4f1ef286", kind="STATICCALL"),  # a view of the breaker
        _frame(WALLET, breaker, _data(decoy), kind="DELEGATECALL"),  # the breaker's code on the wallet's storage
        _frame(WALLET, FORWARDER, "0xabcdef01", error="execution reverted", calls=[
            _frame(FORWARDER, breaker, _data(decoy)),  # succeeded, but its caller reverted: undone
        ]),
        _frame(WALLET, breaker, _data(decoy), error="execution reverted"),
        _frame(WALLET, FORWARDER, "0xabcdef01", calls=[_frame(FORWARDER, breaker, _data(CALL))]),
    ])
    node = FakeNode({"0xf00": _tx(WALLET)}, {"0xf00": trace})
    located = SubmitLocator(node, BREAKER).locate(_report(CALL, FORWARDER))
    assert located == LocatedCall(CALL, breaker, WALLET)

    # With only the undone calls in the trace, nothing carries the Report: that is said, not passed.
    trace["calls"] = trace["calls"][:4]
    with pytest.raises(CalldataError, match=r"none of the 0 submit call\(s\)"):
        SubmitLocator(FakeNode({"0xf00": _tx(WALLET)}, {"0xf00": trace}), BREAKER).locate(_report(CALL, FORWARDER))


def test_two_windows_submitted_in_one_transaction_are_each_matched_to_their_own_call():
    second = replace(CALL, window_id=CALL.window_id + 1, window_end=CALL.window_end + 60, input_hash=456,
                     instances=(456, 700), proof=b"\x03" * 200)
    breaker = BREAKER.lower()
    trace = _frame(RELAYER, FORWARDER, "0xabcdef01", calls=[_frame(FORWARDER, breaker, _data(CALL)),
                                                             _frame(FORWARDER, breaker, _data(second))])
    node = FakeNode({"0xf00": _tx(FORWARDER)}, {"0xf00": trace})
    locator = SubmitLocator(node, BREAKER)
    assert locator.locate(_report(CALL, FORWARDER)).call == CALL
    assert locator.locate(_report(second, FORWARDER)).call == second
    assert node.reads == [("tx", "0xf00"), ("trace", "0xf00")]  # each read once for both reports
    # A Report whose submitter is not the caller the trace shows is not matched to that call.
    with pytest.raises(CalldataError, match="none of the 2"):
        SubmitLocator(node, BREAKER).locate(_report(CALL, WALLET))


def test_a_forwarded_report_on_a_node_without_a_trace_is_a_discrepancy_naming_the_transaction():
    node = FakeNode({"0xf00": _tx(WALLET)}, {"0xf00": None})
    with pytest.raises(TraceUnavailable) as info:
        SubmitLocator(node, BREAKER).locate(_report(CALL, WALLET))
    message = str(info.value)
    assert "0xf00" in message and "another contract" in message and "tracing node" in message
    assert isinstance(info.value, CalldataError)  # what run_audit records as a calldata discrepancy
    with pytest.raises(CalldataError, match="malformed"):
        SubmitLocator(FakeNode({"0xf00": _tx(WALLET)}, {"0xf00": {"calls": []}}), BREAKER).locate(
            _report(CALL, WALLET))


def test_a_tampered_forwarded_report_meets_the_same_checks_as_a_direct_one():
    a, b, stranger = demo_key(2), demo_key(3), demo_key(5)
    honest = _signed([a, b], CALL)
    forged = _signed([a, stranger], replace(CALL, instances=(123, 540)))
    breaker = BREAKER.lower()
    for call, wrong in ((honest, []), (forged, ["calldata", "signatures"])):
        trace = _frame(RELAYER, FORWARDER, "0xabcdef01", calls=[_frame(FORWARDER, breaker, _data(call))])
        located = SubmitLocator(FakeNode({"0xf00": _tx(FORWARDER)}, {"0xf00": trace}), BREAKER).locate(
            _report(honest, FORWARDER))
        ctx = _ctx(honest, [a.address, b.address])
        found = (checks.check_call(ctx, located.call, located.to, BREAKER)
                 + checks.check_signatures(ctx, located.call, 31337, BREAKER))
        assert [f.check for f in found] == wrong


def test_which_trace_errors_mean_the_node_has_no_tracer():
    from sentinel.audit.chainread import trace_refused

    assert trace_refused({"code": -32601, "message": "Method not found"})  # Anvil without it, JSON-RPC 2.0
    assert trace_refused({"code": -32000, "message": "the method debug_traceTransaction does not exist/is not "
                                                     "available"})  # geth without the debug API, Infura
    assert trace_refused({"code": -32000, "message": "tracer not found"})
    assert not trace_refused({"code": -32000, "message": "transaction 0xf00 not found"})
    assert not trace_refused({"code": -32000, "message": "required historical state unavailable (reexec=128)"})


# -- submitBatch: K windows, one proof --------------------------------------------------------------------------

BATCH = [SubmitCall(b"\x05" * 200, (11, 12, 900, 700), 28930160 + i, 1735689600 + 60 * i, (11, 12)[i],
                    (b"\x06" * 65,), index=i, batch_size=2) for i in range(2)]


def _batch_data(calls: list[SubmitCall]) -> str:
    from eth_abi.abi import encode

    first = calls[0]
    args = [first.proof, list(first.instances), [(c.window_id, c.window_end, c.input_hash) for c in calls],
            [list(c.signatures) for c in calls]]
    return "0x" + (submit_batch_selector() + encode(SUBMIT_BATCH_TYPES, args)).hex()


def test_a_batch_is_one_call_per_window_with_its_own_hash_and_score_instances():
    assert decode_reports(bytes.fromhex(_batch_data(BATCH)[2:])) == BATCH
    assert [(c.hash_instance, c.score_instance) for c in BATCH] == [(11, 900), (12, 700)]
    assert decode_reports(bytes.fromhex(_data(CALL)[2:])) == [CALL]
    with pytest.raises(CalldataError, match="neither submit's"):
        decode_reports(b"\xde\xad\xbe\xef" + bytes(64))


def test_the_locator_picks_the_window_of_the_report_from_a_batch():
    node = FakeNode({"0xf00": _tx(BREAKER, _batch_data(BATCH))}, {})
    locator = SubmitLocator(node, BREAKER)
    assert [locator.locate(_report(c, RELAYER)).call for c in reversed(BATCH)] == list(reversed(BATCH))
    stranger = replace(CALL, window_id=1)
    with pytest.raises(CalldataError, match="0 attestation"):
        locator.locate(_report(stranger, RELAYER))


def test_a_batch_call_must_match_its_event_and_the_batch_size_in_force():
    def ctx(call: SubmitCall, k: int) -> ReportContext:
        base = _ctx(call, [], score=score_wad(BATCH[1].score_instance, 10))
        return replace(base, batch_verifier="0x2", batch_windows=k)

    assert checks.check_call(ctx(BATCH[1], 2), BATCH[1], BREAKER, BREAKER) == []
    (size,) = checks.check_call(ctx(BATCH[1], 4), BATCH[1], BREAKER, BREAKER)
    assert "batch of 2 windows; the breaker took batches of 4" in size.message
    swapped = replace(BATCH[1], instances=(11, 13, 900, 700))  # window 1's hash is not its attested one
    (hashed,) = checks.check_call(ctx(swapped, 2), swapped, BREAKER, BREAKER)
    assert "proven input hash differs" in hashed.message
    short = replace(BATCH[1], instances=(11, 12, 900))
    (count,) = checks.check_call(ctx(short, 2), short, BREAKER, BREAKER)
    assert "3 instances, the breaker takes 4" in count.message
