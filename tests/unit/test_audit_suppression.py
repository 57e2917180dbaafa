"""The auditor's suppression check: windows left unreported that would have tripped the breaker (hermetic).

Chain histories are event logs as the breaker emits them, replayed by the
auditor; the unreported windows come with their float scores directly. Each
report lands 10 s after its window ends, so an event logged right after a
report or a skipped window comes before the next window ends.
"""

from __future__ import annotations

from pathlib import Path

from sentinel.audit.replay import Snapshot, replay
from sentinel.audit.suppression import SuppressionResult, Unreported, check_suppression
from sentinel.data.windows import window_id
from tests.support.breaker_log import GOV, GUARD, RESET, Log


def hidden(windows: list[tuple[int, int]], score: float) -> list[Unreported]:
    return [Unreported(wid, end, score) for wid, end in windows]


def check(log: Log, unreported: list[Unreported]) -> SuppressionResult:
    result = replay(log.events)
    assert result.findings == [], result.findings  # every history here is one the breaker can produce
    return check_suppression(Snapshot(), result.history, unreported)


def test_three_unreported_high_windows_in_a_calm_stream_are_flagged_by_name():
    log = Log(lag=10)
    for _ in range(3):
        log.report(0.1, False)
    skipped = log.skip(3)
    for _ in range(2):
        log.report(0.1, False)
    found = check(log, hidden(skipped, 0.95))
    (finding,) = found.findings
    ids = [wid for wid, _ in skipped]
    assert finding.check == "suppression" and finding.severity == "discrepancy"
    assert finding.window_id == ids[2]  # the breaker would have tripped on the third
    for wid in ids:
        assert f"{wid} (0.950)" in finding.message
    assert "the chain did not trip" in finding.message
    assert found.flagged == set(ids)


def test_two_reported_highs_and_one_unreported_high_complete_a_run():
    log = Log(lag=10, trip_after=3)
    log.report(0.95, False)
    log.report(0.95, False)
    (gap,) = log.skip(1)
    log.report(0.1, False)
    (finding,) = check(log, hidden([gap], 0.93)).findings
    assert finding.window_id == gap[0]
    assert finding.message.startswith("1 unreported window(s) scoring >= the trip threshold 0.9 (float model on "
                                      f"the archived rows): {gap[0]} (0.930);")
    assert "run of 3 consecutive high window(s)" in finding.message

    # The same gap, and the relay reports on: the chain trips, three windows late.
    late = Log(lag=10, trip_after=3)
    late.report(0.95, False)
    late.report(0.95, False)
    (gap,) = late.skip(1)
    late.report(0.95, False)
    late.report(0.95, False)
    late.report(0.95, True, auto="Tripped")
    (finding,) = check(late, hidden([gap], 0.93)).findings
    assert finding.window_id == gap[0]
    assert f"the chain tripped only at window {late.window}, 3 window(s) later" in finding.message


def test_unreported_calm_windows_and_windows_just_below_the_threshold_are_fine():
    log = Log(lag=10)
    log.report(0.1, False)
    calm = log.skip(4)
    log.report(0.95, False)
    near = log.skip(2)  # between two reported highs, but below the trip threshold 0.9: they break the run
    log.report(0.95, False)
    log.report(0.95, False)
    found = check(log, hidden(calm, 0.05) + hidden(near, 0.899))
    assert found.findings == [] and found.flagged == set()


def test_a_threshold_score_counts_as_high_and_the_run_may_end_the_history():
    log = Log(lag=10)
    log.report(0.1, False)
    tail = log.skip(3)  # nothing reported after them (the caller passes only windows no longer reportable)
    (finding,) = check(log, hidden(tail, 0.9)).findings
    assert finding.window_id == tail[2][0]


def test_the_thresholds_in_force_when_a_window_ended_apply():
    log = Log(lag=10)
    log.report(0.1, False)
    before = log.skip(2)
    log.emit("ParamsChanged", log.tx(seconds=0), tripThreshold=int(0.97e18), resetThreshold=RESET, tripAfter=3,
             resetAfter=2, cooldown=600, maxAge=1800)
    after = log.skip(3)
    log.report(0.1, False)
    # 0.95 is high under the old threshold and not under the new one; new parameters start new streaks anyway.
    assert check(log, hidden(before, 0.95) + hidden(after, 0.95)).findings == []
    assert len(check(log, hidden(before, 0.95) + hidden(after, 0.98)).findings) == 1


def test_hiding_a_high_window_while_tripped_cannot_bring_the_recovery_forward():
    """The calm streak that recovers the breaker is consecutive reported windows: a window left out breaks it
    on chain as surely as a high score would. So there is no early recovery to flag; the check stays quiet."""
    log = Log(lag=10, reset_after=2, cooldown=60)
    log.report(0.95, False)
    log.report(0.95, False)
    log.report(0.95, True, auto="Tripped")
    log.report(0.1, True)
    high = log.skip(1)  # the relay hides a high score in the middle of the calm run
    log.report(0.1, True)  # on chain: the first calm window of a new streak, so no recovery yet
    log.report(0.1, False, auto="Recovered")  # two consecutive calm windows: recovered, as with the high reported
    result = replay(log.events)
    assert result.findings == [] and [int(e.args["windowId"]) for e in result.recoveries] == [log.window]
    assert check(log, hidden(high, 0.95)).findings == []


def test_a_manual_trip_is_not_blamed_on_suppression():
    def history(by_hand: bool) -> tuple[Log, list[Unreported]]:
        log = Log(lag=10)
        log.report(0.1, False)
        two = log.skip(2)
        if by_hand:
            log.emit("Tripped", log.tx(seconds=0), windowId=log.window - 2, by=GUARD, byGuardian=True)
        more = log.skip(4)
        log.report(0.1, by_hand)
        if by_hand:
            log.emit("Recovered", log.tx(seconds=0), windowId=log.window, by=GOV, byGovernance=True)
        after = log.skip(2)
        log.report(0.1, False)
        return log, hidden(two, 0.95) + hidden(more, 0.99) + hidden(after, 0.95)

    # The guardian tripped it: a manual trip starts the streaks again and nothing is left to trip while it holds;
    # governance's recovery starts them again too (two highs after it are no run of three).
    assert check(*history(by_hand=True)).findings == []
    # The same unreported windows without the manual trip are a run that trips.
    (finding,) = check(*history(by_hand=False)).findings
    assert "6 unreported window(s)" in finding.message


def test_archived_windows_are_every_complete_window_with_its_rows(tmp_path: Path):
    from sentinel.audit.rows import load_archives, raw_window, window_ends, windows_at
    from sentinel.data.io import write_market_csv
    from sentinel.data.synthetic import generate

    path = tmp_path / "rows.csv"
    write_market_csv(generate(1, seed=2), path)
    (archive,) = load_archives([path])
    size = 50
    ends = window_ends(archive, size, since=0, until=float("inf"))
    assert [row for _, row in ends] == list(range(size - 1, len(archive.times)))
    assert len({window_id(end, 60) for end, _ in ends}) == len(ends)
    since, until = ends[10][0], ends[20][0]
    picked = window_ends(archive, size, since=since, until=until)
    assert [row for _, row in picked] == [row for _, row in ends[10:20]]
    rows = [row for _, row in picked]
    stacked = windows_at(archive, rows, size)
    assert stacked.shape == (10, size, 4)
    assert (stacked[3] == raw_window(archive, rows[3], size)).all()
