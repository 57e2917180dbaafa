"""Fee arithmetic and bounds (a fake node for the lane), send-error classification and backoff (pure relay parts)."""

from __future__ import annotations

import dataclasses
import itertools
import random
from types import SimpleNamespace
from typing import Any

import pytest

from sentinel.config import RelayConfig
from sentinel.errors import FeeRefused
from sentinel.relay.daemon import Backoff
from sentinel.relay.lane import (
    GWEI,
    KNOWN,
    NONCE_USED,
    UNDERPRICED,
    Fees,
    Lane,
    bump,
    classify_send_error,
    initial_fees,
    replacement_fees,
    within_caps,
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
    caps = {"priority_cap": 3 * GWEI}
    assert initial_fees(10**9, 10**9, 2.0, 10**12, **caps, latest_base_fee=10**9) == Fees(3 * 10**9, 10**9)
    assert initial_fees(10**12, 10**9, 2.0, 5 * 10**11, **caps, latest_base_fee=10**12) == Fees(5 * 10**11, 10**9)
    assert initial_fees(0, 0, 2.0, 10**12, **caps, latest_base_fee=0).max_priority_fee == 1


class FakeEth:
    """What a node answers to the lane's fee questions (eth_getBlockByNumber, eth_feeHistory, eth_maxPriorityFee)."""

    def __init__(self, latest_base: int, next_base: int, rewards: list[int], suggested_tip: int) -> None:
        self.latest_base = latest_base
        self.next_base = next_base
        self.rewards = rewards
        self.max_priority_fee = suggested_tip

    def get_block(self, which: str) -> dict[str, int]:
        assert which == "latest"
        return {"number": 100, "timestamp": 1_750_000_000, "baseFeePerGas": self.latest_base}

    def fee_history(self, count: int, newest: str, percentiles: list[int]) -> dict[str, Any]:
        return {"baseFeePerGas": [self.latest_base] * count + [self.next_base],
                "reward": [[r] for r in self.rewards]}


def lane_on(eth: FakeEth, **settings: Any) -> Lane:
    w3 = SimpleNamespace(eth=eth)
    chain = SimpleNamespace(w3=w3, rpc_url="http://fake", chain_id=31337)
    config = dataclasses.replace(RelayConfig(), **settings)
    return Lane(chain, SimpleNamespace(address="0x" + "11" * 20), multiplier=config.base_fee_multiplier,
                priority_gwei=config.priority_fee_gwei, cap_gwei=config.max_fee_gwei,
                bump_percent=config.fee_bump_percent, priority_cap_gwei=config.max_priority_fee_gwei)


GAS = 580_000  # about a report's gas


@pytest.mark.parametrize(("rewards", "suggested"), [([0] * 10, 1000 * GWEI),  # eth_maxPriorityFeePerGas lies
                                                    ([1000 * GWEI] * 10, GWEI)])  # eth_feeHistory's rewards lie
def test_an_inflated_tip_suggestion_is_capped(rewards: list[int], suggested: int):
    lane = lane_on(FakeEth(GWEI, GWEI, rewards, suggested))
    fees = lane.market_fees()
    cap = int(RelayConfig().max_priority_fee_gwei * GWEI)
    assert fees.max_priority_fee == cap < 1000 * GWEI
    assert fees.max_fee == 2 * GWEI + cap
    # the most the tip can cost per report is the cap's, not the liar's
    assert fees.max_priority_fee * GAS <= RelayConfig().max_priority_fee_gwei * GWEI * GAS < 10**16


def test_an_honest_tip_is_kept_and_a_configured_cap_applies():
    assert lane_on(FakeEth(GWEI, GWEI, [0] * 10, GWEI // 2)).market_fees().max_priority_fee == GWEI // 2
    assert lane_on(FakeEth(GWEI, GWEI, [0] * 10, 5 * GWEI), max_priority_fee_gwei=0.25).market_fees() \
        == Fees(2 * GWEI + GWEI // 4, GWEI // 4)


def test_an_inflated_next_base_fee_is_refused_and_an_honest_rise_is_bid_within_the_bound():
    lane = lane_on(FakeEth(GWEI, 5000 * GWEI, [0] * 10, GWEI))
    with pytest.raises(FeeRefused, match=r"next base fee \(5000 gwei.*2 x the latest block's base fee \(1 gwei\)"):
        lane.market_fees()
    rising = lane_on(FakeEth(8 * GWEI, 9 * GWEI, [0] * 10, GWEI)).market_fees()  # +12.5 %: the most one block adds
    assert rising.max_fee == 2 * 8 * GWEI + GWEI  # at most 2 x the latest block's base fee + the tip
    assert rising.max_fee >= 9 * GWEI + rising.max_priority_fee  # and still enough for the next block
    jump = FakeEth(8 * GWEI, 17 * GWEI, [0] * 10, GWEI)  # more than 2 x in one answer: refused at 2, bid at 3
    with pytest.raises(FeeRefused):
        lane_on(jump).market_fees()
    assert lane_on(jump, base_fee_multiplier=3).market_fees().max_fee == 3 * 8 * GWEI + GWEI


def test_bumps_raise_both_fields_enough_for_geth_until_a_cap_stops_them():
    market = lane_on(FakeEth(GWEI, GWEI, [0] * 10, GWEI)).market_fees()
    cap, priority_cap = int(RelayConfig().max_fee_gwei * GWEI), int(RelayConfig().max_priority_fee_gwei * GWEI)
    sent = [market]
    while True:
        nxt = replacement_fees(sent[-1], market, RelayConfig().fee_bump_percent)
        if not within_caps(nxt, cap, priority_cap):
            break
        sent.append(nxt)
    assert 5 <= len(sent) < 20  # room for several bumps from a 1 gwei tip, and a stop
    for old, new in itertools.pairwise(sent):  # geth wants +10 % on both fields
        assert new.max_fee * 100 >= old.max_fee * 110 and new.max_priority_fee * 100 >= old.max_priority_fee * 110
    assert all(f.max_priority_fee <= priority_cap and f.max_fee <= cap for f in sent)
    assert bump(sent[-1].max_priority_fee, RelayConfig().fee_bump_percent) > priority_cap


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
