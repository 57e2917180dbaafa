"""``sentinel bench --day``: the day's feed, and the figures computed from what a run measured."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sentinel.data import schema
from sentinel.data.io import read_market_csv
from sentinel.errors import DataError
from sentinel.relay.day import (
    MIN_ROWS,
    TAIL_ROWS,
    CostAssumptions,
    DayFeed,
    ModeRun,
    WindowRecord,
    _cpu_seconds,
    build_day_feed,
    day_cost,
    healthy_part,
    mode_figures,
)


def test_the_day_feed_holds_hard_negatives_and_one_drain_crash_near_its_end(tmp_path):
    feed = build_day_feed(300, tmp_path / "day.csv")
    frame = read_market_csv(feed.path).frame  # valid: one continuous feed at one cadence
    assert len(frame) == feed.rows == 300
    assert frame[schema.CRASH_ONSET].sum() == 1
    assert set(frame[schema.FAMILY]) == {"dip", "drain"}  # the calm part's last episode is a dip here
    assert (frame[schema.PHASE] == "dip").any()
    assert feed.hard_negatives == 1
    onset = int(np.flatnonzero(frame[schema.CRASH_ONSET].to_numpy() == 1)[0])
    crash = frame.index[frame[schema.PHASE] == schema.CRASH]
    assert feed.onset_row == onset + 1 == crash[0] + 1
    assert feed.bottom_row == int(frame.loc[crash, schema.MID_PRICE].idxmin()) + 1
    assert feed.onset_row < feed.bottom_row == feed.rows - TAIL_ROWS
    assert (frame[schema.FAMILY].iloc[feed.drain_first_row - 1:] == "drain").all()
    assert (frame[schema.FAMILY].iloc[:feed.drain_first_row - 1] != "drain").all()
    assert feed.row_of(int(frame[schema.TIMESTAMP].iloc[feed.bottom_row - 1].timestamp())) == feed.bottom_row
    assert feed.to_dict()["rows_after_bottom"] == TAIL_ROWS


def test_a_day_feed_of_240_rows_keeps_the_whole_crash_and_longer_ones_put_calm_rows_first(tmp_path):
    short = build_day_feed(MIN_ROWS, tmp_path / "short.csv")
    day = build_day_feed(1440, tmp_path / "day.csv")
    assert short.rows == MIN_ROWS and day.rows == 1440
    assert day.bottom_row - day.onset_row == short.bottom_row - short.onset_row  # the same drain episode
    assert day.drain_first_row - short.drain_first_row == 1440 - MIN_ROWS
    assert day.hard_negatives > 1


def test_too_few_rows_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(DataError, match=f"--rows {MIN_ROWS - 1}: the day bench needs at least {MIN_ROWS} rows"):
        build_day_feed(MIN_ROWS - 1, tmp_path / "day.csv")
    assert not (tmp_path / "day.csv").exists()


def test_a_crash_episode_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"drain episode \(seed 4\) takes 366 rows .* it does not fit"):
        build_day_feed(300, tmp_path / "day.csv", drain_seed=4)
    assert not (tmp_path / "day.csv").exists()


# --- the figures, from fixed measurements ----------------------------------------------------------------------

FEED = DayFeed(path=Path("day.csv"), rows=720, cadence_seconds=60.0, first_unix=0, drain_first_row=500,
               onset_row=600, bottom_row=650, hard_negatives=2)


def _run(mode: str, windows: list[tuple[int, str, int, float | None, bool]], cpu: float | None = 12.5) -> ModeRun:
    records = tuple(WindowRecord(1000 + row, row, state, gas, prove, tripped)
                    for row, state, gas, prove, tripped in windows)
    return ModeRun(mode, records, sum(1 for w in records if w.gas_used), 100.0, 90.0, cpu)


EVERY = _run("every", [(100, "confirmed", 600_000, 5.0, False), (200, "confirmed", 600_000, 5.0, False),
                       (600, "confirmed", 600_000, 5.0, False), (620, "confirmed", 600_000, 5.0, True),
                       (640, "confirmed", 600_000, 5.0, True)])
RISK = _run("risk", [(100, "screened", 0, None, False), (200, "confirmed", 12_000, 4.0, False),
                     (600, "confirmed", 600_000, 5.0, False), (620, "confirmed", 600_000, 5.0, True),
                     (640, "confirmed", 588_000, 5.0, True)])


def test_a_modes_figures_scale_gas_to_a_market_day_and_find_the_trip_and_its_lead():
    every = mode_figures(EVERY, FEED)
    assert every["gas_total"] == 3_000_000
    assert every["gas_per_market_day_scaled"] == 6_000_000  # 720 rows of 60 s are half a day
    assert every["transactions"] == 5 and every["proofs"] == 5 and every["prove_seconds_total"] == 25.0
    assert every["tripped_at"] == {"window": 1620, "end_row": 620, "lead_rows": 30, "lead_minutes": 30.0}
    assert every["healthy_part"] == {"windows": 2, "gas": 1_200_000, "proofs": 2}
    assert every["windows"] == {"confirmed": 5}
    risk = mode_figures(RISK, FEED)
    assert risk["windows"] == {"confirmed": 4, "screened": 1}
    assert risk["proofs"] == 4 and risk["transactions"] == 4
    assert risk["healthy_part"] == {"windows": 2, "gas": 12_000, "proofs": 1}


def test_a_batch_proof_counts_once_and_its_windows_share_its_time():
    batched = _run("every", [(600, "confirmed", 600_000, 5.0, True), (620, "confirmed", 0, 4.0, True),
                             (640, "confirmed", 650_000, 4.0, True)])
    batched = replace(batched, windows=(batched.windows[0], *(replace(w, batch_of=batched.windows[2].window_id)
                                                            for w in batched.windows[1:])))
    figures = mode_figures(batched, FEED)
    assert (figures["proofs"], figures["windows_proved"], figures["windows_in_batch_proofs"]) == (2, 3, 2)
    assert figures["prove_seconds_total"] == 13.0 and figures["gas_total"] == 1_250_000


def test_the_healthy_part_compares_the_modes_against_the_target():
    part = healthy_part(mode_figures(EVERY, FEED), mode_figures(RISK, FEED))
    assert part["gas_every"] == 1_200_000 and part["gas_risk"] == 12_000
    assert part["risk_over_every"] == 0.01 and part["within_target"] is True
    assert part["same_trip_window"] is True
    late = _run("risk", [(200, "confirmed", 60_000, 4.0, False), (640, "confirmed", 600_000, 5.0, True)])
    part = healthy_part(mode_figures(EVERY, FEED), mode_figures(late, FEED))
    assert part["risk_over_every"] == 0.05 and part["within_target"] is False
    assert part["same_trip_window"] is False
    untripped = _run("risk", [(200, "screened", 0, None, False)])
    assert healthy_part(mode_figures(untripped, FEED), mode_figures(untripped, FEED))["same_trip_window"] is False


def test_a_days_cost_at_the_assumed_prices():
    cost = day_cost(6_000_000, CostAssumptions(mainnet_gwei=10.0, l2_gwei=0.01, eth_usd=3000.0))
    assert cost["mainnet"] == {"gas_price_gwei": 10.0, "eth": 0.06, "usd": 180.0}
    assert cost["l2"] == {"gas_price_gwei": 0.01, "eth": 0.00006, "usd": 0.18}
    figures = mode_figures(EVERY, FEED, CostAssumptions(mainnet_gwei=20.0, l2_gwei=0.01, eth_usd=1000.0))
    assert figures["cost_per_market_day_scaled"]["mainnet"] == {"gas_price_gwei": 20.0, "eth": 0.12, "usd": 120.0}


def test_cpu_seconds_of_a_process_count_its_work():
    before = _cpu_seconds(os.getpid())
    assert before is not None
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = _cpu_seconds(os.getpid())
    assert after is not None and after - before >= 0.1


def test_the_human_table_shows_both_modes_the_ratio_and_the_assumed_prices():
    from sentinel.cli.zk_cli import day_lines
    from sentinel.relay.day import ASSUMPTIONS

    modes = {"every": mode_figures(EVERY, FEED), "risk": mode_figures(RISK, FEED)}
    result = {"rows": FEED.rows, "crash": FEED.to_dict(), "modes": modes,
              "healthy_part": healthy_part(modes["every"], modes["risk"]), "assumptions": ASSUMPTIONS.to_dict()}
    lines = day_lines(result)
    text = "\n".join(lines)
    assert lines[0] == "day: 720 rows, 2 hard negatives, drain onset row 600, price bottom row 650"
    assert lines[1].split() == ["every", "risk"]
    row = next(line for line in lines if line.startswith("gas per market-day"))
    assert row.split()[-2:] == ["6,000,000", "3,600,000"]
    row = next(line for line in lines if line.startswith("mainnet at 10 gwei"))
    assert "0.060000 ETH ($180.00)" in row and "0.036000 ETH ($108.00)" in row
    assert "risk / every gas 1.00 % (target <= 2 %: met); same trip window: yes" in text
    assert "1620 (row 620)" in text and "30 rows, 30 min" in text
    assert lines[-1].startswith("ETH at $3,000 (assumed); assumed prices, not measured.")
