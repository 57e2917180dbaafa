"""The chain burst bench's pure parts: every feed on one time grid, the markets' tables, the ticks' times."""

from __future__ import annotations

import tomllib

import pytest

from sentinel.errors import ConfigError
from sentinel.relay.burst import check_sizes
from sentinel.relay.burst_chain import GRID_START, PREFILL, market_tables, on_grid, tick_unix


def test_rows_are_restamped_onto_one_minute_grid_keeping_their_values():
    rows = ["2024-01-05T10:17:00.000Z,1.5,2,3", "2024-01-05T10:18:00.000Z,1.6,2,3"]
    assert on_grid(rows, 1_780_000_020) == ["2026-05-28T20:27:00.000Z,1.5,2,3", "2026-05-28T20:28:00.000Z,1.6,2,3"]


def test_market_tables_parse_as_the_project_reads_them():
    text = market_tables(["m0", "m1"], {"m0": ["http://127.0.0.1:1"], "m1": ["http://127.0.0.1:2", "http://x:3"]})
    tables = tomllib.loads(text)["markets"]
    assert tables == {"m0": {"feed": "feeds/m0", "attesters": ["http://127.0.0.1:1"]},
                      "m1": {"feed": "feeds/m1", "attesters": ["http://127.0.0.1:2", "http://x:3"]}}
    assert tomllib.loads(market_tables(["m0"]))["markets"] == {"m0": {"feed": "feeds/m0"}}


def test_tick_zero_is_the_last_prefilled_row_and_ticks_are_minutes():
    assert tick_unix(0) == GRID_START + 60 * (PREFILL - 1)
    assert tick_unix(5) - tick_unix(0) == 300


def test_sizes_that_end_before_the_crash_are_refused():
    check_sizes(2, 5, 6.0)
    with pytest.raises(ConfigError, match="--minutes 2 ends before the crash onset"):
        check_sizes(2, 2, 6.0)
    with pytest.raises(ConfigError, match="--cadence"):
        check_sizes(2, 5, 0.0)
