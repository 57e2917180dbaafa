"""Fee arithmetic and bounds (a fake node for the lane), send-error classification and backoff (pure relay parts)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
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


def test_a_window_too_close_to_the_max_age_is_not_proved_or_sent_to_be_mined_stale():
    """Seen in the tour: the first window proved (no proof timed yet, so no allowance for it) ended a few seconds
    inside the breaker's max age; its submit passed the pre-checks and estimate, was mined a few seconds later, and
    reverted StaleWindow on chain, gas paid. The oldest end worth proving allows the proof and inclusion."""
    from sentinel.relay.daemon import FIRST_PROOF_SECONDS, INCLUSION_MARGIN_SECONDS, next_in_order, oldest_end

    now, max_age = 100_000, 1800
    edge = {1: now - max_age + 3, 2: now - max_age + 40, 3: now - max_age + 60}
    # proving: 2 x the first proof's 15 s + 24 s of inclusion = 54 s inside the max age at least
    chosen, skipped = next_in_order(edge, -1, oldest_end(now, max_age, prove_seconds=0.0), "proved")
    assert chosen == 3 and [w for w, _ in skipped] == [1, 2]
    assert oldest_end(now, max_age, prove_seconds=0.0) == now - max_age + int(2 * FIRST_PROOF_SECONDS) + 24
    assert oldest_end(now, max_age, prove_seconds=40.0) == now - max_age + 80 + INCLUSION_MARGIN_SECONDS
    assert oldest_end(now, max_age) == now - max_age + INCLUSION_MARGIN_SECONDS  # sending: inclusion only
    chosen, skipped = next_in_order(edge, -1, oldest_end(now, max_age), "submitted")
    assert chosen == 2 and [w for w, _ in skipped] == [1]


# --- a private submission endpoint (security #18.5): routing, and what "unknown to the node" means -----------

API_KEY = "k3y-8f2c91"  # stands for an API key in a private endpoint's URL


class FakeNode:
    """The main RPC's eth namespace: a pool, no mining; every JSON-RPC method it is asked is recorded."""

    def __init__(self) -> None:
        from eth_account import Account

        self.account = Account
        self.methods: list[str] = []
        self.pool: dict[str, str] = {}  # hash -> raw: what a public node holds
        self.sent: list[str] = []
        self.keeps_pool = True  # False: the node forgets transactions (evicted, restarted)
        self.reported = False  # True: the window was reported by someone else (the simulation reverts)
        self.mined = 0  # transactions of the relay's address mined (its nonce)
        self.lands_when_simulated = False  # True: ours is mined just before the next simulation
        self.quorum_raised = False  # True: governance raised the quorum after ours was signed

    def get_block(self, which: Any) -> dict[str, Any]:
        self.methods.append("eth_getBlockByNumber")
        return {"number": 100, "timestamp": 1_750_000_000, "baseFeePerGas": GWEI, "hash": b"\x01" * 32}

    def fee_history(self, count: int, newest: str, percentiles: list[int]) -> dict[str, Any]:
        self.methods.append("eth_feeHistory")
        return {"baseFeePerGas": [GWEI] * (count + 1), "reward": [[GWEI]] * count}

    def get_transaction_count(self, address: str, which: str) -> int:
        self.methods.append("eth_getTransactionCount")
        return self.mined + len(self.pool) if which == "pending" else self.mined

    def get_transaction_receipt(self, tx_hash: str) -> Any:
        from web3.exceptions import TransactionNotFound

        self.methods.append("eth_getTransactionReceipt")
        raise TransactionNotFound(tx_hash)

    def get_transaction(self, tx_hash: str) -> Any:
        from web3.exceptions import TransactionNotFound

        self.methods.append("eth_getTransactionByHash")
        if tx_hash not in self.pool:
            raise TransactionNotFound(tx_hash)
        return {"hash": tx_hash}

    def call(self, tx: dict[str, Any]) -> bytes:
        from sentinel.errors import ContractRevert

        self.methods.append("eth_call")
        if self.lands_when_simulated:
            self.mined, self.reported = 1, True
        if self.reported:
            raise ContractRevert("simulating", "WindowNotNewer", {"windowId": 7, "last": 7})
        if self.quorum_raised:
            raise ContractRevert("simulating", "TooFewSignatures", {"got": 2, "required": 3})
        return b""

    def send_raw_transaction(self, raw: str) -> None:
        self.methods.append("eth_sendRawTransaction")
        self.sent.append(raw)
        if self.keeps_pool:
            self.pool[_hash(raw)] = raw


class FakePrivate:
    """A private endpoint: takes raw transactions (recorded), answers nothing else; ``down`` refuses connections."""

    label = "https://private.example"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.down = False

    def send_raw_transaction(self, raw: str) -> None:
        from requests.exceptions import ConnectionError as RequestsConnectionError

        if self.down:
            raise RequestsConnectionError(f"https://private.example/{API_KEY}: connection refused")
        self.sent.append(raw)


def _hash(raw: str) -> str:
    from eth_utils.crypto import keccak
    from hexbytes import HexBytes

    return "0x" + keccak(HexBytes(raw)).hex()


class FakeChain:
    """What the relay reads of a Chain: w3, url, chain id and the revert-decoding seam."""

    def __init__(self, node: FakeNode) -> None:
        self.w3 = SimpleNamespace(eth=node)
        self.rpc_url = "http://main.example"
        self.chain_id = 31337

    def _seam(self, what: str) -> Any:
        from sentinel.chain.client import web3_errors

        return web3_errors(what, self.rpc_url)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


WINDOW_ID, WINDOW_END = 7, 1_750_000_000 - 120


def relay_on(tmp_path, node: FakeNode, private: FakePrivate | None, clock: Clock, *, fallback: bool = False,
             stuck: float = 30.0, **shared: Any) -> Any:
    """A Relay on a fake node (and private endpoint), its queue in ``tmp_path``: as after ``connect``."""
    import json

    from sentinel.artifacts import ArtifactLayout
    from sentinel.chain.keys import demo_key
    from sentinel.config import load_config
    from sentinel.relay.daemon import Relay

    layout = ArtifactLayout(tmp_path)
    layout.deployments.parent.mkdir(parents=True, exist_ok=True)
    layout.deployments.write_text(json.dumps({
        "chain_id": 31337, "rpc_url": "http://main.example", "block": 1, "deployed_at": "", "deployer": "",
        "governance": "", "guardian": "", "attesters": [], "quorum": 2, "timelock_seconds": 3600,
        "score_scale": 0, "policy": {"max_age_seconds": 1800}, "circuit": {}, "contracts": {}, "compiler": ""}))
    layout.circuit_manifest.parent.mkdir(parents=True, exist_ok=True)
    layout.circuit_manifest.write_text(json.dumps({"window": 50, "cadence_seconds": 60}))
    config = load_config(tmp_path, {"relay.stuck_seconds": stuck, "relay.private_fallback_public": fallback,
                                    "relay.attesters": "http://127.0.0.1:9"}, env={})
    relay = Relay(layout, config, data=tmp_path / "feed.csv", db=tmp_path / "queue.sqlite", clock=clock, **shared)
    relay.key = demo_key(6)
    relay.chain = FakeChain(node)
    relay._lane = Lane(relay.chain, relay.key, multiplier=2.0, priority_gwei=0, cap_gwei=1000, bump_percent=12.5,
                       priority_cap_gwei=3, private=private, fallback_public=fallback)
    return relay


def send_report(relay: Any, nonce: int = 0) -> str:
    """What submit_next does once the window is attested: sign, store, then broadcast (the calldata is a stand-in)."""
    from sentinel.relay.daemon import PassResult
    from sentinel.relay.queue import TxRow

    queue = relay.queue
    if not queue.windows():
        queue.enqueue([(WINDOW_ID, WINDOW_END, None, None)])
        queue.transition(WINDOW_ID, "proving")
        queue.transition(WINDOW_ID, "proved")
    fees = relay.lane.market_fees()
    tx = relay.lane.sign({"to": "0x" + "22" * 20, "data": "0x1234"}, nonce, fees, 200_000)
    queue.record_tx(WINDOW_ID, TxRow(tx.tx_hash, WINDOW_ID, nonce, tx.raw_tx, fees.max_fee, fees.max_priority_fee,
                                     200_000, relay.clock()), from_state="proved")
    relay._broadcast(PassResult(), WINDOW_ID, tx.raw_tx, tx.tx_hash)
    return str(tx.raw_tx)


def reconcile(relay: Any) -> Any:
    from sentinel.relay.daemon import PassResult

    result = PassResult()
    relay.reconcile(result, relay.lane.head())
    return result


def test_with_a_private_endpoint_only_raw_transactions_go_there(tmp_path):
    node, private = FakeNode(), FakePrivate()
    relay = relay_on(tmp_path, node, private, Clock(1000.0), stuck=5)
    raw = send_report(relay)
    assert private.sent == [raw]
    relay.clock.now += 6  # stuck: bumped; the replacement goes to the private endpoint too
    reconcile(relay)
    assert len(private.sent) == 2 and private.sent[1] != raw
    assert "eth_sendRawTransaction" not in node.methods and node.sent == []
    # reads, nonces, fees, simulation and the pool check all stayed on the main RPC
    assert {"eth_getBlockByNumber", "eth_feeHistory", "eth_getTransactionCount", "eth_getTransactionReceipt",
            "eth_getTransactionByHash", "eth_call"} <= set(node.methods)
    # without one, the main RPC is sent the transaction (today's behaviour)
    public = relay_on(tmp_path / "public", FakeNode(), None, Clock(1000.0))
    assert send_report(public) == public.chain.w3.eth.sent[0]


def test_unknown_to_the_public_node_is_normal_for_a_private_tx_no_resend_spam_then_a_bump(tmp_path):
    node, private = FakeNode(), FakePrivate()
    relay = relay_on(tmp_path, node, private, Clock(1000.0), stuck=30)
    raw = send_report(relay)
    for _ in range(29):  # a pass a second: the main node never sees it, which is no sign it was dropped
        relay.clock.now += 1
        result = reconcile(relay)
        assert not relay.lane.known(_hash(raw))
        assert result.rejected == [] and result.errors == []
    assert private.sent == [raw]  # sent once: not again every pass
    assert relay.queue.get(WINDOW_ID).state == "submitted" and len(relay.queue.txs(WINDOW_ID)) == 1
    relay.clock.now += 2  # past stuck_seconds: replaced, both fees up, same nonce
    reconcile(relay)
    txs = relay.queue.txs(WINDOW_ID)
    assert [t.raw_tx for t in txs] == private.sent == [raw, txs[1].raw_tx]
    assert txs[1].nonce == txs[0].nonce and txs[1].max_fee * 1000 >= txs[0].max_fee * 1125
    assert relay.metrics.fee_bumps._value.get() == 1 and relay.metrics.rebroadcasts._value.get() == 0
    reconcile(relay)
    assert len(private.sent) == 2


def test_after_a_restart_the_private_tx_is_sent_again_once_with_the_same_bytes(tmp_path):
    node, private = FakeNode(), FakePrivate()
    clock = Clock(1000.0)
    relay = relay_on(tmp_path, node, private, clock)
    raw = send_report(relay)
    relay.close()
    # a new process (say after kill -9 between storing and sending): it cannot tell whether the endpoint got it
    again = relay_on(tmp_path, node, private, clock)
    clock.now += 1
    reconcile(again)
    reconcile(again)
    assert private.sent == [raw, raw]  # once more, the same signature: idempotent at the endpoint
    assert [t.raw_tx for t in again.queue.txs(WINDOW_ID)] == [raw]
    assert node.sent == []


def test_at_the_fee_cap_a_private_tx_is_resent_every_stuck_period_not_every_pass(tmp_path):
    node, private = FakeNode(), FakePrivate()
    relay = relay_on(tmp_path, node, private, Clock(1000.0), stuck=10)
    relay.lane.priority_cap = relay.lane.market_fees().max_priority_fee  # no bump fits under the cap
    raw = send_report(relay)
    for _ in range(35):
        relay.clock.now += 1
        reconcile(relay)
    # stuck from t=1011 on, bump refused: the same bytes again at 1011 and 1022 and 1033, nothing in between
    assert private.sent == [raw] * 4
    assert len(relay.queue.txs(WINDOW_ID)) == 1 and node.sent == []


def test_a_public_node_that_forgets_the_tx_still_gets_it_again_every_pass(tmp_path):
    """Without a private endpoint, "unknown to the node" means dropped: the same bytes go again at once."""
    node = FakeNode()
    node.keeps_pool = False
    relay = relay_on(tmp_path, node, None, Clock(1000.0))
    raw = send_report(relay)
    for _ in range(3):
        relay.clock.now += 1
        reconcile(relay)
    assert node.sent == [raw] * 4
    node.keeps_pool = True
    reconcile(relay)
    reconcile(relay)  # now it holds it: no more sends until stuck_seconds
    assert node.sent == [raw] * 5


def test_a_private_endpoint_outage_backs_off_without_touching_the_public_mempool(tmp_path, caplog):
    from sentinel.errors import ChainUnavailable

    node, private = FakeNode(), FakePrivate()
    private.down = True
    relay = relay_on(tmp_path, node, private, Clock(1000.0))
    with pytest.raises(ChainUnavailable) as info:
        send_report(relay)
    message = str(info.value)
    assert message.startswith("https://private.example: eth_sendRawTransaction to the private endpoint")
    assert "relay.private_fallback_public" in message and API_KEY not in message
    assert node.sent == [] and relay.queue.get(WINDOW_ID).state == "submitted"  # stored, not lost
    relay.clock.now += 1
    with pytest.raises(ChainUnavailable):  # the next pass tries the endpoint again (the run loop backs off)
        reconcile(relay)
    private.down = False
    relay.clock.now += 1
    reconcile(relay)
    assert private.sent == [relay.queue.txs(WINDOW_ID)[0].raw_tx] and node.sent == []
    assert API_KEY not in caplog.text


def test_fallback_to_the_public_rpc_only_when_allowed(tmp_path, caplog):
    node, private = FakeNode(), FakePrivate()
    private.down = True
    relay = relay_on(tmp_path, node, private, Clock(1000.0), fallback=True)
    raw = send_report(relay)
    assert node.sent == [raw] and private.sent == []
    assert "event=private_rpc_fallback endpoint=https://private.example" in caplog.text
    assert API_KEY not in caplog.text
    relay.clock.now += 1
    reconcile(relay)  # the public node holds it now: nothing to resend
    assert node.sent == [raw] and private.sent == []


def test_a_reported_window_cancels_the_private_tx_the_public_node_cannot_see(tmp_path):
    node, private = FakeNode(), FakePrivate()
    relay = relay_on(tmp_path, node, private, Clock(1000.0))
    raw = send_report(relay)
    node.reported = True  # a copy landed first
    relay.clock.now += 1
    result = reconcile(relay)
    assert result.rejected == [WINDOW_ID]
    assert len(private.sent) == 2 and private.sent[0] == raw  # the cancel went privately, at our nonce
    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from hexbytes import HexBytes

    cancel = TypedTransaction.from_bytes(HexBytes(private.sent[1])).as_dict()
    assert cancel["nonce"] == 0 and cancel["gas"] == 21_000
    assert "0x" + bytes(cancel["to"]).hex() == relay.key.address.lower()
    assert node.sent == []


def test_our_report_landing_between_the_receipt_lookup_and_the_simulation_is_not_disowned(tmp_path):
    """A privately sent report becomes visible only when mined, perhaps just after its receipt was looked up:
    the simulation then reverts WindowNotNewer because of our own report. The window must not be rejected
    (nor a cancel sent): the next pass finds the receipt."""
    node, private = FakeNode(), FakePrivate()
    relay = relay_on(tmp_path, node, private, Clock(1000.0))
    raw = send_report(relay)
    node.lands_when_simulated = True
    relay.clock.now += 1
    result = reconcile(relay)
    assert result.rejected == [] and relay.queue.get(WINDOW_ID).state == "submitted"
    assert private.sent == [raw]  # no cancel


def test_a_private_endpoint_url_is_shown_as_scheme_and_host_only(tmp_path, caplog):
    from sentinel.chain.client import SendOnlyEndpoint
    from sentinel.config import load_config, redact_url, resolve_config
    from sentinel.errors import ChainUnavailable, ConfigError

    url = f"https://user:{API_KEY}@rpc.example.org:8443/v1/{API_KEY}?apikey={API_KEY}"
    assert redact_url(url) == "https://rpc.example.org:8443"
    assert redact_url("") == ""
    assert redact_url("not a url") == "<unparsable url>"
    env = {"SENTINEL_RELAY__PRIVATE_RPC_URL": url, "SENTINEL_RELAY__PRIVATE_FALLBACK_PUBLIC": "true"}
    resolved = resolve_config(tmp_path, env=env)
    assert resolved.config.relay.private_rpc_url == url and resolved.config.relay.private_fallback_public is True
    assert load_config(tmp_path, env={}).relay.private_fallback_public is False
    with pytest.raises(ConfigError, match="not a boolean"):
        load_config(tmp_path, env={"SENTINEL_RELAY__PRIVATE_FALLBACK_PUBLIC": "maybe"})
    with pytest.raises(ConfigError, match="must be an http") as info:
        load_config(tmp_path, env={"SENTINEL_RELAY__PRIVATE_RPC_URL": f"ws://rpc.example.org/{API_KEY}"})
    assert API_KEY not in str(info.value)
    # a real endpoint object on a closed local port: the transport error names the host, never the key
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = SendOnlyEndpoint(f"http://127.0.0.1:{port}/{API_KEY}")
    assert endpoint.label == f"http://127.0.0.1:{port}"
    lane = lane_on(FakeEth(GWEI, GWEI, [0] * 10, GWEI))
    lane.private = endpoint
    with caplog.at_level(logging.DEBUG), pytest.raises(ChainUnavailable) as down:  # as under `sentinel -v`
        lane.broadcast("0x02")
    assert str(down.value).startswith(f"http://127.0.0.1:{port}: ") and API_KEY not in str(down.value)
    assert API_KEY not in caplog.text  # web3 logs each request's full URI at debug level


def test_sentinel_config_shows_the_private_endpoint_redacted(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("SENTINEL_RELAY__PRIVATE_RPC_URL", f"https://rpc.example.org/{API_KEY}")
    code, out, _ = run_cli("--root", tmp_path, "config")
    assert code == 0 and 'relay.private_rpc_url = "https://rpc.example.org"' in out and API_KEY not in out
    code, out, _ = run_cli("--root", tmp_path, "config", "--json")
    assert code == 0 and API_KEY not in out and "https://rpc.example.org" in out


def test_a_pending_report_signed_under_an_old_quorum_is_replaced_and_signed_again(tmp_path):
    """The quorum went up while ours waited: sending or bumping it would only buy a revert and a failed window."""
    node = FakeNode()
    relay = relay_on(tmp_path, node, None, Clock(1000.0))
    raw = send_report(relay)
    node.quorum_raised = True
    relay.clock.now += 1
    result = reconcile(relay)
    window = relay.queue.get(WINDOW_ID)
    assert result.rejected == [] and window.state == "proved" and window.tx_hash is None
    assert "TooFewSignatures" in (window.last_error or "")
    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from hexbytes import HexBytes

    assert node.sent[0] == raw and len(node.sent) == 2  # ours, then the self-transfer that replaces it
    cancel = TypedTransaction.from_bytes(HexBytes(node.sent[1])).as_dict()
    assert cancel["nonce"] == 0 and cancel["gas"] == 21_000


def test_markets_on_one_signer_take_distinct_nonces_and_a_dropped_one_is_filled(tmp_path):
    """Two markets' relays in one process share the signer: a nonce is above every market's sent transaction
    even when the node forgot them; and when one market drops its unmined transaction (the window was reported
    by someone else) while another market's waits behind its nonce, the nonce is filled by a cancel, though the
    node no longer holds the dropped one: left unused, it would stall the other market for good."""
    import threading

    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from hexbytes import HexBytes

    from sentinel.relay.queue import QueueLock

    node = FakeNode()
    node.keeps_pool = False  # the node forgets: only the queue knows which nonces are taken
    clock = Clock(1000.0)
    lock, nonces = QueueLock(tmp_path / "queue.sqlite"), threading.Lock()
    eth = relay_on(tmp_path, node, None, clock, market="eth", lock=lock, nonce_lock=nonces)
    btc = relay_on(tmp_path, node, None, clock, market="btc", lock=lock, nonce_lock=nonces)
    first = eth.lane.next_nonce(eth.queue.submitted_nonces())
    send_report(eth, first)
    second = btc.lane.next_nonce(btc.queue.submitted_nonces())
    send_report(btc, second)
    assert (first, second) == (0, 1)
    assert eth.queue.get(WINDOW_ID).nonce == 0 and btc.queue.get(WINDOW_ID).nonce == 1  # one id, two markets
    node.reported = True  # eth's window was reported by a copy first: its transaction can only revert now
    clock.now += 1
    result = reconcile(eth)
    assert result.rejected == [WINDOW_ID] and eth.queue.get(WINDOW_ID).state == "rejected"
    cancel = TypedTransaction.from_bytes(HexBytes(node.sent[-1])).as_dict()
    assert cancel["nonce"] == 0 and cancel["gas"] == 21_000  # nonce 0 filled: btc's nonce 1 can be mined
    assert btc.queue.get(WINDOW_ID).state == "submitted"
    eth.close()
    btc.close()
    lock.release()
