"""The auditor's replay of SentinelBreaker's state machine, event by event (hermetic)."""

from __future__ import annotations

from sentinel.audit.replay import Params, Snapshot, State, compare_final, replay
from tests.support.breaker_log import CADENCE, GOV, GUARD, RESET, TRIP, V1, V2, A, B, C, Log


def findings(log: Log) -> list[str]:
    return [f.message for f in replay(log.events).findings]


def test_trip_after_n_consecutive_high_scores_and_recovery_after_m_low_plus_cooldown():
    log = Log()
    log.report(0.95, False)
    log.report(0.95, False)
    log.report(0.2, False)  # streak broken
    log.report(0.95, False)
    log.report(0.95, False)
    log.report(0.95, True, auto="Tripped")
    log.report(0.1, True)
    log.report(0.1, True)  # two low scores, but the 600 s cooldown has not passed (60 s per block)
    for _ in range(7):
        log.report(0.1, True)
    log.report(0.1, False, auto="Recovered")  # the tenth low score lands exactly at trip + cooldown
    result = replay(log.events)
    assert result.findings == []
    assert len(result.trips) == 1 and len(result.recoveries) == 1
    assert result.final.state == State(last_window_id=log.window, last_window_end=log.window * CADENCE + 30)


def test_hysteresis_a_score_between_thresholds_breaks_the_low_streak():
    log = Log(reset_after=2, cooldown=60)
    for _ in range(2):
        log.report(0.95, False)
    log.report(0.95, True, auto="Tripped")
    log.report(0.1, True)
    log.report(0.6, True)  # between reset and trip: neither streak
    log.report(0.1, True)
    log.report(0.1, False, auto="Recovered")
    assert findings(log) == []


def test_a_missing_trip_is_a_discrepancy():
    log = Log()
    for _ in range(3):
        log.report(0.95, False)  # the contract would have tripped on the third
    messages = findings(log)
    assert any("replayed state machine says Tripped" in m for m in messages)
    assert any("Report says tripped=False, replay says True" in m for m in messages)


def test_a_trip_the_rules_do_not_allow_is_a_discrepancy():
    log = Log()
    log.report(0.95, True, auto="Tripped")
    assert any("contract emitted Tripped" in m for m in findings(log))


def test_guardian_trip_and_governance_recover_are_checked_by_role():
    log = Log()
    log.report(0.1, False)
    log.emit("Tripped", log.tx(), windowId=log.window, by=GUARD, byGuardian=True)
    log.emit("Recovered", log.tx(), windowId=log.window, by=GOV, byGovernance=True)
    assert findings(log) == []
    log.emit("Tripped", log.tx(), windowId=log.window, by=A, byGuardian=True)
    log.emit("Recovered", log.tx(), windowId=log.window, by=GUARD, byGovernance=True)
    messages = findings(log)
    assert any("neither guardian nor governance" in m for m in messages)
    assert any("is not governance" in m for m in messages)


def test_window_ids_must_increase():
    log = Log()
    log.report(0.1, False, window=500)
    log.report(0.1, False, window=500)
    assert any("ids must increase" in m for m in findings(log))


def test_verifier_change_needs_a_pending_proposal_past_its_eta_and_resets_streaks():
    log = Log()
    log.emit("VerifierChangeProposed", log.tx(), verifier=V2, scoreScale=12, cadence=CADENCE, eta=log.time + 3600)
    log.time += 3600 - 60  # two reports (60 s each) and the change land just past the eta
    log.window = log.time // CADENCE
    log.report(0.95, False)
    log.report(0.95, False)
    log.emit("VerifierChanged", log.tx(seconds=0), previous=V1, verifier=V2, scoreScale=12, cadence=CADENCE)
    log.report(0.95, False)  # the next window, but the change restarted the streak: no trip on this third high
    result = replay(log.events)
    assert result.findings == []
    assert result.final.verifier == V2 and result.final.score_scale == 12
    assert result.reports[-1].verifier == V2 and result.reports[0].verifier == V1

    early = Log()
    early.emit("VerifierChangeProposed", early.tx(), verifier=V2, scoreScale=10, cadence=CADENCE, eta=early.time + 3600)
    early.emit("VerifierChanged", early.tx(seconds=60), previous=V1, verifier=V2, scoreScale=10, cadence=CADENCE)
    assert any("before its timelock eta" in m for m in findings(early))
    unproposed = Log()
    unproposed.emit("VerifierChanged", unproposed.tx(), previous=V1, verifier=V2, scoreScale=10, cadence=CADENCE)
    assert any("without that proposal pending" in m for m in findings(unproposed))


def test_each_report_carries_the_attester_set_and_quorum_at_its_block():
    log = Log()
    log.report(0.1, False)
    tx = log.tx()
    log.emit("AttesterRemoved", tx, attester=A)
    log.emit("QuorumChanged", log.tx(), quorum=1)
    log.report(0.1, False)
    result = replay(log.events)
    assert result.findings == []
    first, second = result.reports
    assert A.lower() in first.attesters and first.quorum == 2
    assert A.lower() not in second.attesters and second.quorum == 1
    assert result.final.attesters == (C, B)  # swap-and-pop, as the contract's list


def test_stale_report_is_a_discrepancy():
    log = Log(max_age=60)
    tx = log.tx()
    log.window += 1
    log.emit("Report", tx, windowId=log.window, windowEnd=log.time - 3600, inputHash=1, score=0, submitter=GOV,
             tripped=False)
    assert any("stale window accepted" in m for m in findings(log))


def test_compare_final_names_each_difference():
    a = Snapshot(state=State(5, 330, 0, 1, 0, False), params=Params(TRIP, RESET, 3, 2, 600, 1800, 2), verifier=V1,
                 attesters=(A, B))
    assert compare_final(a, a) == []
    b = Snapshot(state=State(5, 330, 0, 2, 0, False), params=a.params, verifier=V1, attesters=(B, A))
    (only,) = compare_final(a, b)
    assert "state.high_streak" in only.message


def test_a_manual_trip_holds_through_calm_reports_until_governance_recovers():
    log = Log(reset_after=2, cooldown=60)
    log.report(0.1, False)
    log.emit("Tripped", log.tx(), windowId=log.window, by=GUARD, byGuardian=True)
    for _ in range(4):
        log.report(0.1, True)  # past the cooldown, past reset_after: still tripped
    log.emit("Recovered", log.tx(), windowId=log.window, by=GOV, byGovernance=True)
    assert findings(log) == []
    # A contract that let reports lift the manual trip is caught.
    lifted = Log(reset_after=2, cooldown=60)
    lifted.report(0.1, False)
    lifted.emit("Tripped", lifted.tx(), windowId=lifted.window, by=GUARD, byGuardian=True)
    lifted.report(0.1, True)
    lifted.report(0.1, False, auto="Recovered")
    assert any("replayed state machine says none" in m for m in findings(lifted))


def test_the_guardian_can_make_an_automatic_trip_manual():
    log = Log(reset_after=2, cooldown=60)
    for _ in range(2):
        log.report(0.95, False)
    log.report(0.95, True, auto="Tripped")
    log.emit("Tripped", log.tx(), windowId=log.window, by=GUARD, byGuardian=True)
    for _ in range(3):
        log.report(0.1, True)
    result = replay(log.events)
    assert result.findings == []
    assert result.final.state.manual is True and result.final.state.tripped is True
    log.emit("Tripped", log.tx(), windowId=log.window, by=GUARD, byGuardian=True)
    assert any("already tripped by hand" in m for m in findings(log))


def test_new_parameters_start_new_streaks():
    log = Log()
    log.report(0.95, False)
    log.report(0.95, False)
    log.emit("ParamsChanged", log.tx(), tripThreshold=TRIP, resetThreshold=RESET, tripAfter=3, resetAfter=2,
             cooldown=600, maxAge=1800)
    log.report(0.95, False)  # the third high score in a row, but the first under the new parameters
    assert findings(log) == []
    assert replay(log.events).final.state.high_streak == 1


def test_streaks_are_runs_of_consecutive_windows_a_gap_starts_them_again():
    log = Log()
    log.report(0.95, False)
    log.report(0.95, False)
    log.report(0.95, False, window=log.window + 4)  # three high reports, but windows were skipped: no trip
    result = replay(log.events)
    assert result.findings == [] and result.final.state.high_streak == 1
    cherry = Log()  # a contract that tripped on cherry-picked windows is caught
    cherry.report(0.95, False)
    cherry.report(0.95, False)
    cherry.report(0.95, True, auto="Tripped", window=cherry.window + 4)
    assert any("contract emitted Tripped" in m for m in findings(cherry))


def test_a_window_id_that_is_not_its_end_over_the_cadence_is_a_discrepancy():
    log = Log()
    tx = log.tx()
    log.window += 1
    log.emit("Report", tx, windowId=log.window + 1000, windowEnd=log.window * CADENCE + 30, inputHash=1, score=0,
             submitter=GOV, tripped=False)
    assert any("the cadence 60 s gives" in m for m in findings(log))


def test_a_score_outside_zero_one_accepted_is_a_discrepancy():
    log = Log()
    log.report(0.5, False)
    log.report(1.02, False)  # the breaker refuses this: a contract that took it is flagged
    assert any("score 1.02 accepted" in m for m in findings(log))


def test_batch_verifier_changes_are_followed_with_the_verifier():
    log = Log()
    tx = log.tx()
    log.emit("VerifierChangeProposed", tx, verifier=V2, scoreScale=10, cadence=CADENCE, eta=log.time + 3600,
             batchVerifier=C, batchWindows=4)
    log.time += 3600
    tx = log.tx(seconds=0)
    log.emit("VerifierChanged", tx, previous=V1, verifier=V2, scoreScale=10, cadence=CADENCE)
    log.emit("BatchVerifierChanged", tx, previous="0x" + "00" * 20, verifier=C, windows=4)
    log.window = log.time // CADENCE
    log.report(0.1, False)
    result = replay(log.events)
    assert result.findings == []
    assert (result.final.batch_verifier, result.final.batch_windows) == (C, 4)
    from dataclasses import replace

    (differs,) = compare_final(result.final, replace(result.final, batch_windows=8))
    assert differs.message.startswith("batch_windows: replay of the events gives 4, the contract holds 8")
    wrong = Log()
    wrong.emit("BatchVerifierChanged", wrong.tx(), previous=V1, verifier=C, windows=4)
    assert any("batch verifier change from" in m for m in findings(wrong))
