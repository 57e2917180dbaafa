"""Tailing a feed: whole lines only, bad rows quarantined with line and column, windows only from good rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sentinel.config import DataConfig
from sentinel.data.feed import Feed
from sentinel.data.io import market_csv_bytes
from sentinel.data.synthetic import generate
from sentinel.errors import FeedError
from sentinel.relay.replay import row_unix

WINDOW = 5
TEN_YEARS = 10 * 365 * 86_400


@pytest.fixture(scope="module")
def lines() -> list[str]:
    text = market_csv_bytes(generate(1, seed=3)).decode()
    return text.splitlines()


def make(path: Path, **kw) -> Feed:
    return Feed(path, DataConfig(), 60.0, WINDOW, keep_rows=50, **kw)


def test_only_complete_lines_are_read_and_windows_are_cut(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    path.write_text("\n".join(lines[:7]) + "\n" + lines[7][:10])  # header + 6 rows + half a row
    feed = make(path)
    poll = feed.poll()
    assert [r.line for r in poll.rows] == [2, 3, 4, 5, 6, 7]
    assert [w.end_line for w in poll.windows] == [6, 7]  # windows ending at the 5th and 6th rows
    assert poll.windows[1].window_id == poll.windows[0].window_id + 1
    with path.open("a") as fh:
        fh.write(lines[7][10:] + "\n")
    poll = feed.poll()
    assert [r.line for r in poll.rows] == [8] and [w.end_line for w in poll.windows] == [8]
    assert feed.poll().rows == []


def test_a_malformed_row_is_quarantined_and_later_rows_flow(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    bad = lines[6].split(",")
    bad[1] = "oops"
    path.write_text("\n".join([*lines[:6], ",".join(bad), *lines[7:9], "1,2"]) + "\n")
    feed = make(path)
    poll = feed.poll()
    assert [(b.line, b.column) for b in poll.bad] == [(7, "blr"), (10, None)]
    assert "not a number: 'oops'" in poll.bad[0].problem and "line 7, column 'blr'" in poll.bad[0].describe()
    assert "2 fields" in poll.bad[1].problem
    assert [r.line for r in poll.rows] == [2, 3, 4, 5, 6, 8, 9]
    # the bad row leaves a two-cadence hole: a new segment starts, so no window spans it
    assert poll.gaps == 1
    assert [w.end_line for w in poll.windows] == [6]
    assert feed.market_for(poll.windows[0].window_id) is not None


def test_a_row_going_back_in_time_is_quarantined_against_the_last_good_row(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    path.write_text("\n".join([*lines[:5], lines[3], lines[5]]) + "\n")
    poll = make(path).poll()
    assert [b.line for b in poll.bad] == [6] and poll.bad[0].column == "timestamp"
    assert [r.line for r in poll.rows] == [2, 3, 4, 5, 7]


def test_state_round_trip_resumes_without_rereading(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    path.write_text("\n".join(lines[:6]) + "\n")
    feed = make(path)
    first = feed.poll()
    assert len(first.windows) == 1
    resumed = make(path, state=feed.state())
    with path.open("a") as fh:
        fh.write(lines[6] + "\n")
    poll = resumed.poll()
    assert [r.line for r in poll.rows] == [7]
    assert [w.window_id for w in poll.windows] == [first.windows[0].window_id + 1]
    market = resumed.market_for(poll.windows[0].window_id)
    assert len(market) == WINDOW


def test_a_directory_of_files_is_one_feed_in_name_order(tmp_path: Path, lines: list[str]):
    (tmp_path / "a.csv").write_text("\n".join(lines[:4]) + "\n")
    (tmp_path / "b.csv").write_text("\n".join([lines[0], *lines[4:8]]) + "\n")
    poll = make(tmp_path).poll()
    assert len(poll.rows) == 7 and poll.bad == [] and len(poll.windows) == 3


def test_missing_feed_waits_but_a_bad_header_is_an_error(tmp_path: Path):
    assert make(tmp_path / "later.csv").poll().rows == []
    with pytest.raises(FeedError, match="neither a file nor a directory"):
        make(tmp_path / "nope" / "x.csv").poll()
    (tmp_path / "h.csv").write_text("time,blr\n")
    with pytest.raises(FeedError, match="header lacks column"):
        make(tmp_path / "h.csv").poll()


def shifted(line: str, seconds: float) -> str:
    """The row with its timestamp moved by ``seconds`` (a wrong clock or time zone at the source)."""
    stamp = datetime.fromtimestamp(row_unix(line) + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return stamp + "," + line.split(",", 1)[1]


def test_a_row_ten_years_ahead_is_quarantined_and_the_honest_rows_after_it_cut_windows(tmp_path: Path,
                                                                                          lines: list[str]):
    path = tmp_path / "market_depth.csv"
    honest = lines[1:200]
    future = shifted(honest[9], TEN_YEARS)
    path.write_text("\n".join([lines[0], *honest[:10], future, *honest[10:]]) + "\n")
    now = row_unix(honest[-1]) + 30  # a live feed: the newest honest row is half a minute old
    poll = make(path, clock=lambda: now).poll()
    assert [(b.line, b.column) for b in poll.bad] == [(12, "timestamp")]
    assert "300 s future skew" in poll.bad[0].problem and f"dated {future[:19]}Z" in poll.bad[0].problem
    after = list(range(13, 13 + 189))  # the 189 honest rows after the bad one
    assert [r.line for r in poll.rows] == list(range(2, 12)) + after
    assert poll.gaps == 0  # an extra row, not a missing one: the honest rows stay one segment
    assert [w.end_line for w in poll.windows] == list(range(2 + WINDOW - 1, 12)) + after


def test_a_two_hour_slip_is_quarantined_without_taking_honest_rows_with_it(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    path.write_text(lines[0] + "\n")
    slipped = {21, 22, 23}  # data rows stamped in the wrong time zone (+2 h)
    now = [0.0]
    feed = make(path, clock=lambda: now[0])
    bad, rows, windows = [], [], []
    for i in range(1, 61):  # rows arrive one by one; the clock is each row's true time plus a few seconds
        with path.open("a") as fh:
            fh.write((shifted(lines[i], 7200) if i in slipped else lines[i]) + "\n")
        now[0] = row_unix(lines[i]) + 5
        poll = feed.poll()
        bad += [b.line for b in poll.bad]
        rows += [r.line for r in poll.rows]
        windows += [w.end_line for w in poll.windows]
    lines_of = [i + 1 for i in slipped]
    assert bad == lines_of
    assert rows == [n for n in range(2, 62) if n not in lines_of]
    # the three missing minutes are a gap: windows restart once WINDOW honest rows follow it
    assert windows == list(range(2 + WINDOW - 1, 22)) + list(range(25 + WINDOW - 1, 62))


def test_a_state_saved_after_a_future_row_restores_without_the_bad_reference(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    path.write_text("\n".join([lines[0], *lines[1:9], shifted(lines[8], TEN_YEARS)]) + "\n")
    now = row_unix(lines[8]) + 30
    feed = make(path, clock=lambda: now)
    assert [b.line for b in feed.poll().bad] == [10]
    saved = feed.state()
    assert saved["rows"][-1][1] == 9  # the last good row stays the reference, not the future one
    # A state written while the future row was held (by an older relay, or under a clock that was wrong then):
    held = make(path, clock=lambda: now + TEN_YEARS)
    held.poll()
    stale = held.state()
    assert stale["rows"][-1][1] == 10
    with path.open("a") as fh:
        fh.write("\n".join(lines[9:20]) + "\n")
    later = row_unix(lines[19]) + 30
    for state in (saved, stale):
        resumed = make(path, state=state, clock=lambda: later)
        poll = resumed.poll()
        assert [r.line for r in poll.rows] == list(range(11, 22))
        assert [w.end_line for w in poll.windows] == list(range(11, 22))  # continuing the rows before it
        assert [(b.line, b.column) for b in poll.bad] == ([] if state is saved else [(10, "timestamp")])
        assert resumed.state()["rows"][-1][1] == 21
        assert all(r[3] <= later for r in resumed.state()["rows"])


def test_a_batch_gets_its_windows_rows_and_the_rows_before_only_without_a_gap(tmp_path: Path, lines: list[str]):
    path = tmp_path / "market_depth.csv"
    path.write_text("\n".join(lines[:9]) + "\n")
    feed = make(path)
    newest = feed.poll().windows[-1].window_id
    assert len(feed.market_for(newest, before=2)) == WINDOW + 2  # the rows of the two windows before too
    assert feed.market_for(newest, before=9) is None  # more rows than the feed holds
    bad = lines[6].split(",")
    bad[1] = "oops"
    path.write_text("\n".join([*lines[:6], ",".join(bad), *lines[7:10]]) + "\n")
    gapped = make(path)
    last = gapped.poll().windows[-1].window_id
    assert gapped.market_for(last) is not None and gapped.market_for(last, before=1) is None  # no rows across a gap
