"""Auditor parts that need no chain: calldata decoding, signature checks, gaps, reports and exit codes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sentinel.audit import checks
from sentinel.audit.calldata import SUBMIT_TYPES, CalldataError, SubmitCall, decode_submit, submit_selector
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
