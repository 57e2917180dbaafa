"""Fee arithmetic, send-error classification and backoff (pure parts of the relay)."""

from __future__ import annotations

import random

import pytest

from sentinel.relay.daemon import Backoff
from sentinel.relay.lane import (
    KNOWN,
    NONCE_USED,
    UNDERPRICED,
    Fees,
    bump,
    classify_send_error,
    initial_fees,
    replacement_fees,
)


@pytest.mark.parametrize("value", [0, 1, 7, 8, 1_000_000_000, 3_000_000_001, 10**20 + 3])
def test_bump_is_at_least_12_5_percent_and_one_wei(value: int):
    bumped = bump(value, 12.5)
    assert bumped * 1000 >= value * 1125
    assert bumped >= value + 1
    assert bumped <= value + value * 125 // 1000 + 1  # and not wildly more


def test_replacement_raises_both_fields_and_follows_the_market():
    old = Fees(max_fee=30 * 10**9, max_priority_fee=10**9)
    calm = replacement_fees(old, Fees(3 * 10**9, 10**9), 12.5)
    assert calm.max_fee * 1000 >= old.max_fee * 1125 and calm.max_priority_fee * 1000 >= old.max_priority_fee * 1125
    hot = replacement_fees(old, Fees(100 * 10**9, 2 * 10**9), 12.5)
    assert hot == Fees(100 * 10**9, 2 * 10**9)  # the base fee rose past the bump: bid what the market needs
    assert replacement_fees(Fees(10, 10), Fees(1, 1), 12.5).max_fee >= replacement_fees(Fees(10, 10), Fees(1, 1),
                                                                                       12.5).max_priority_fee


def test_initial_fees_leave_room_for_base_fee_rises_and_respect_the_cap():
    assert initial_fees(10**9, 10**9, 2.0, 10**12) == Fees(3 * 10**9, 10**9)
    assert initial_fees(10**12, 10**9, 2.0, 5 * 10**11) == Fees(5 * 10**11, 10**9)
    assert initial_fees(0, 0, 2.0, 10**12).max_priority_fee == 1


@pytest.mark.parametrize(("message", "outcome"), [
    ("{'code': -32003, 'message': 'nonce too low'}", NONCE_USED),
    ("already known", KNOWN),
    ("replacement transaction underpriced", UNDERPRICED),
    ("{'code': -32003, 'message': 'max fee per gas less than block base fee'}", UNDERPRICED),
    ("insufficient funds for gas * price + value", None),
])
def test_node_refusals_are_classified(message: str, outcome: str | None):
    assert classify_send_error(message) == outcome


def test_backoff_doubles_with_jitter_up_to_the_cap():
    backoff = Backoff(1.0, 8.0, random.Random(1))
    waits = [backoff.next() for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= w <= cap for w, cap in zip(waits, caps, strict=True))
    assert len(set(waits)) == len(waits)  # jittered, not lock-step
    backoff.reset()
    assert backoff.next() <= 1.0


def test_windows_go_on_chain_in_order_oldest_reportable_first():
    from sentinel.relay.daemon import next_in_order

    assert next_in_order({}, -1, 0, "proved") == (None, [])
    ends = {10: 600, 11: 660, 12: 720}
    assert next_in_order(ends, -1, 0, "proved") == (10, [])  # newer windows wait their turn
    chosen, skipped = next_in_order(ends, 10, 0, "proved")  # 10 already proved
    assert chosen == 11 and skipped == [(10, "not newer than window 10, already proved or sent")]
    chosen, skipped = next_in_order(ends, -1, 700, "proved")  # 10 and 11 are past the breaker's max age
    assert chosen == 12 and [w for w, _ in skipped] == [10, 11]
    assert all("too old to report" in reason for _, reason in skipped)
    expected = (None, [(9, "not newer than window 9, already submitted or sent")])
    assert next_in_order({9: 540}, 9, 0, "submitted") == expected
