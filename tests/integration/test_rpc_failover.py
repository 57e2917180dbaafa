"""relay.rpc_urls on a real node: one Anvil behind two TCP proxies, a Chain over both, one proxy cut and restored.

Reads and real transactions (plain value transfers signed with the relay's
demo key) keep working through the second proxy while the first is down; once
it is back, after the recheck interval, requests go to the first again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sentinel.chain import anvil
from sentinel.chain.client import Chain
from sentinel.chain.keys import Key, demo_key
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

RECHECK_SECONDS = 1.0
GWEI = 10**9


@pytest.fixture(scope="module")
def node_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path_factory.mktemp("anvil-failover") / "anvil.log")
    yield port
    anvil.stop_process(process.pid)


def transfer(chain: Chain, key: Key, to: str, wei: int) -> Any:
    """A plain value transfer, signed here and sent as raw bytes; its receipt."""
    w3 = chain.w3
    base_fee = int(chain.block()["baseFeePerGas"])
    tx = {"type": 2, "chainId": chain.chain_id, "nonce": w3.eth.get_transaction_count(key.address, "pending"),
          "to": to, "value": wei, "gas": 21_000, "maxPriorityFeePerGas": GWEI, "maxFeePerGas": 2 * base_fee + GWEI}
    signed = w3.eth.account.sign_transaction(tx, key.secret)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


def test_a_chain_over_two_proxies_reads_and_sends_through_the_second_while_the_first_is_down(node_port, caplog):
    first, second = TcpProxy(node_port).up(), TcpProxy(node_port).up()
    sender, receiver = demo_key(6), demo_key(7).address
    try:
        with caplog.at_level(logging.INFO, logger="sentinel.chain.failover"):
            chain = Chain(first.url, fallbacks=[second.url], recheck_seconds=RECHECK_SECONDS)
            chain.stop_retrying()  # as the relay does
            start = chain.w3.eth.get_balance(receiver)
            assert transfer(chain, sender, receiver, 1)["status"] == 1
            assert chain.rpc_url == first.url

            first.down()
            receipts = [transfer(chain, sender, receiver, 10) for _ in range(2)]
            assert [r["status"] for r in receipts] == [1, 1]
            assert chain.rpc_url == second.url
            assert int(chain.block()["number"]) >= int(receipts[-1]["blockNumber"])
            state = {s["endpoint"]: s for s in chain.rpc_status() or []}
            assert state[first.url]["healthy"] is False and state[first.url]["down_since"] is not None
            assert state[second.url]["active"] is True
            down_since = float(state[first.url]["down_since"])

            first.up()
            deadline = time.monotonic() + 10 * RECHECK_SECONDS
            while chain.rpc_url != first.url and time.monotonic() < deadline:
                chain.block()
                time.sleep(0.05)
            assert chain.rpc_url == first.url
            assert time.time() - down_since >= RECHECK_SECONDS  # not probed again before its interval
            assert transfer(chain, sender, receiver, 100)["status"] == 1
            assert chain.rpc_url == first.url
        assert chain.w3.eth.get_balance(receiver) == start + 1 + 2 * 10 + 100  # each transfer landed once
        assert f"event=rpc_failover from={first.url} to={second.url}" in caplog.text
        assert f"event=rpc_recovered endpoint={first.url} was=down" in caplog.text
        assert f"event=rpc_failover from={second.url} to={first.url}" in caplog.text
    finally:
        first.down()
        second.down()
