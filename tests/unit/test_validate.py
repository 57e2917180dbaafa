"""Strict validation: every rule gives one message naming file, row and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import DataConfig
from sentinel.data.io import read_market_csv
from sentinel.errors import DataFileError, DataValidationError

HEADER = "timestamp,blr,buy_volume,sell_volume,mid_price"


def rows(n: int = 6) -> list[str]:
    out = []
    for i in range(n):
        buy, sell = 1200.0 + i, 1000.0
        out.append(f"2025-12-13T08:{44 + i:02d}:16.180Z,{buy / sell:.4f},{buy:.2f},{sell:.2f},3113.70")
    return out


def write(tmp_path: Path, lines: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "market_depth.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def set_cell(lines: list[str], row: int, column: int, value: str) -> list[str]:
    """Replace one cell (row is 1-based data row, column 0-based)."""
    lines = list(lines)
    cells = lines[row - 1].split(",")
    cells[column] = value
    lines[row - 1] = ",".join(cells)
    return lines


def expect(path: Path, row: int | None, column: str | None, fragment: str) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read_market_csv(path)
    err = info.value
    assert err.row == row
    assert err.column == column
    assert fragment in str(err)
    assert str(path) in str(err)
    assert "\n" not in str(err)
    return err


def test_accepts_seed_crawler_file_with_extra_columns(tmp_path):
    lines = [line + ",false,x" for line in rows()]
    path = write(tmp_path, lines, HEADER + ",alert_triggered,note")
    data = read_market_csv(path)
    assert len(data) == 6
    assert data.cadence_seconds == 60
    assert data.dropped_columns == ("note",)
    assert not data.frame["alert_triggered"].any()
    assert str(data.frame["timestamp"].dt.tz) == "UTC"


def test_accepts_scraper_jitter_in_timestamps(tmp_path):
    lines = rows()
    lines = set_cell(lines, 3, 0, "2025-12-13T08:46:17.900Z")  # 1.7 s late
    data = read_market_csv(write(tmp_path, lines))
    assert len(data) == 6


def test_missing_column(tmp_path):
    path = write(tmp_path, [",".join(r.split(",")[:4]) for r in rows()], "timestamp,blr,buy_volume,sell_volume")
    expect(path, None, "mid_price", "required column is missing")


def test_duplicate_column(tmp_path):
    path = write(tmp_path, [r + ",1" for r in rows()], HEADER + ",blr")
    expect(path, None, "blr", "appears twice")


def test_nan_value_names_row_and_column(tmp_path):
    err = expect(write(tmp_path, set_cell(rows(), 4, 1, "NaN")), 4, "blr", "NaN is not allowed")
    assert err.line == 5
    assert "row 4 (line 5)" in str(err)


def test_empty_value(tmp_path):
    expect(write(tmp_path, set_cell(rows(), 2, 4, "")), 2, "mid_price", "missing value")


def test_non_numeric_value(tmp_path):
    expect(write(tmp_path, set_cell(rows(), 3, 2, "12k")), 3, "buy_volume", "not a number: '12k'")


def test_infinite_value(tmp_path):
    expect(write(tmp_path, set_cell(rows(), 5, 4, "inf")), 5, "mid_price", "infinite value")


@pytest.mark.parametrize(("column", "name"), [(2, "buy_volume"), (3, "sell_volume"), (4, "mid_price")])
def test_non_positive_volume_or_price(tmp_path, column, name):
    expect(write(tmp_path, set_cell(rows(), 2, column, "0")), 2, name, "must be > 0")


def test_negative_price(tmp_path):
    expect(write(tmp_path, set_cell(rows(), 6, 4, "-3113.7")), 6, "mid_price", "must be > 0, got -3113.7")


def test_duplicate_timestamp(tmp_path):
    lines = set_cell(rows(), 3, 0, "2025-12-13T08:45:16.180Z")
    expect(write(tmp_path, lines), 3, "timestamp", "duplicate timestamp")


def test_decreasing_timestamp(tmp_path):
    lines = set_cell(rows(), 4, 0, "2025-12-13T08:45:30.000Z")
    expect(write(tmp_path, lines), 4, "timestamp", "earlier than row 3")


def test_gap_beyond_cadence(tmp_path):
    lines = rows(8)
    for i in range(5, 9):  # rows 5.. shift by 10 minutes: a gap after row 4
        lines = set_cell(lines, i, 0, f"2025-12-13T09:{i + 4:02d}:16.180Z")
    err = expect(write(tmp_path, lines), 5, "timestamp", "gap of 1320 s after row 4")
    assert "60 s cadence" in str(err)


def test_explicit_cadence_is_used(tmp_path):
    path = write(tmp_path, rows())
    with pytest.raises(DataValidationError, match="30 s cadence"):
        read_market_csv(path, DataConfig(cadence_seconds=30))


def test_blr_inconsistent_with_volumes(tmp_path):
    err = expect(write(tmp_path, set_cell(rows(), 2, 1, "0.9000")), 2, "blr", "disagrees with buy_volume / sell_volume")
    assert "1.201" in str(err)


def test_bad_timestamp(tmp_path):
    expect(write(tmp_path, set_cell(rows(), 1, 0, "yesterday")), 1, "timestamp", "not an ISO-8601 timestamp")


def test_wrong_field_count(tmp_path):
    lines = rows()
    lines[2] += ",extra"
    expect(write(tmp_path, lines), 3, None, "has 6 fields but the header has 5")


def test_bad_alert_flag(tmp_path):
    lines = [r + ",false" for r in rows()]
    lines = set_cell(lines, 2, 5, "maybe")
    expect(write(tmp_path, lines, HEADER + ",alert_triggered"), 2, "alert_triggered", "expected true/false")


def test_earliest_problem_is_reported_and_others_counted(tmp_path):
    lines = set_cell(rows(), 5, 1, "NaN")
    lines = set_cell(lines, 2, 4, "abc")
    err = expect(write(tmp_path, lines), 2, "mid_price", "not a number")
    assert err.more == 1
    assert "[and 1 more problem]" in str(err)


def test_header_only(tmp_path):
    expect(write(tmp_path, []), None, None, "no data rows")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataFileError, match="is empty"):
        read_market_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_market_csv(tmp_path / "nope.csv")


def test_not_utf8(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"timestamp,blr\n\xff\xfe\x00")
    with pytest.raises(DataFileError, match="not UTF-8"):
        read_market_csv(path)
