"""Replaying a recorded feed into the relay's feed and, in step, into attesters' own copies."""

from __future__ import annotations

import pytest

from sentinel.data.io import market_csv_bytes
from sentinel.data.synthetic import generate
from sentinel.errors import DataFileError
from sentinel.relay.replay import replay


def test_copies_get_each_row_in_step_and_a_disagreeing_copy_its_own_row(tmp_path):
    lines = market_csv_bytes(generate(1, seed=4)).decode().splitlines()[:21]
    src = tmp_path / "src.csv"
    src.write_text("\n".join(lines) + "\n")
    corrupted = lines.copy()
    corrupted[8] = corrupted[8].replace(",", ",9", 1)  # row 8 of the copy says something else
    other = tmp_path / "other.csv"
    other.write_text("\n".join(corrupted) + "\n")
    seen: list[tuple[str, str, str]] = []
    relay_feed, honest, liar = tmp_path / "relay.csv", tmp_path / "a" / "feed.csv", tmp_path / "c" / "feed.csv"

    def check(index: int, unix: float) -> None:  # when row `index` reached the relay's feed, every copy had it
        seen.append(tuple(p.read_text().splitlines()[-1] for p in (relay_feed, honest, liar)))

    result = replay(src, relay_feed, rows_per_second=1000, first=5, last=20, prefill=3,
                    copies=[(honest, None), (liar, other)], on_row=check)
    assert result.rows == 16
    assert relay_feed.read_text() == honest.read_text() == "\n".join([lines[0], *lines[2:21]]) + "\n"
    assert liar.read_text() == "\n".join([corrupted[0], *corrupted[2:21]]) + "\n"
    assert all(r == a for r, a, _ in seen) and len(seen) == 16
    assert [r != c for r, _, c in seen].count(True) == 1


def test_a_copy_source_must_match_row_for_row(tmp_path):
    lines = market_csv_bytes(generate(1, seed=4)).decode().splitlines()[:21]
    src, short = tmp_path / "src.csv", tmp_path / "short.csv"
    src.write_text("\n".join(lines) + "\n")
    short.write_text("\n".join(lines[:10]) + "\n")
    with pytest.raises(DataFileError, match="a copy's source must match"):
        replay(src, tmp_path / "relay.csv", rows_per_second=1000, copies=[(tmp_path / "c.csv", short)])
    assert not (tmp_path / "relay.csv").exists()
