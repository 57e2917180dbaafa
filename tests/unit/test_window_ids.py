"""The one window-id rule (security #18.10): floor, as the breaker computes it on chain."""

from __future__ import annotations

import pytest

from sentinel.data.windows import window_id


def test_a_feed_stamped_at_half_past_gives_every_window_its_own_id():
    # 111 consecutive one-minute windows ending at hh:mm:30: round() gave them 56 distinct ids.
    ends = [1_735_689_630 + 60 * i for i in range(111)]
    ids = [window_id(end, 60) for end in ends]
    assert len(set(ids)) == 111
    assert ids == list(range(ids[0], ids[0] + 111))


@pytest.mark.parametrize(("end", "cadence", "expected"), [
    (0, 60, 0), (59, 60, 0), (60, 60, 1), (89, 60, 1), (90, 60, 1), (119, 60, 1), (120, 60, 2),
    (1_735_689_599, 60, 28_928_159), (1_735_689_600, 60, 28_928_160), (3_599, 3_600, 0), (7, 1, 7),
])
def test_window_id_is_the_end_divided_by_the_cadence_rounded_down(end: int, cadence: int, expected: int):
    assert window_id(end, cadence) == expected == end // cadence
