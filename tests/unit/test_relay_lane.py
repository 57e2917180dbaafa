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


def test_newest_first_skips_every_older_window_with_a_reason():
    from sentinel.relay.daemon import newest_first

    assert newest_first([], -1, "pending") == (None, [])
    chosen, skipped = newest_first([12, 10, 11], -1, "pending")
    assert chosen == 12 and [w for w, _ in skipped] == [10, 11]
    assert all("newer window 12 pending" in reason for _, reason in skipped)
    chosen, skipped = newest_first([9], 9, "proved")  # not newer than one already in flight
    assert chosen is None and skipped == [(9, "not newer than window 9, already proved or sent")]
    assert newest_first([15], 9, "proved") == (15, [])
