"""Tailing a feed: whole lines only, bad rows quarantined with line and column, windows only from good rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import DataConfig
from sentinel.data.io import market_csv_bytes
from sentinel.data.synthetic import generate
from sentinel.errors import FeedError
from sentinel.relay.feed import Feed

WINDOW = 5


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
