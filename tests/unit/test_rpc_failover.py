"""relay.rpc_urls: the failover provider against real local HTTP JSON-RPC nodes (stdlib http.server, 127.0.0.1).

Each node answers eth_chainId and eth_blockNumber (the probes) and a few
other methods, counts what it was asked, and can be stopped (connection
refused), made to answer HTTP 503, made to hang past the client's timeout, or
report another chain id or an older head. The clock is injected: only the
recheck interval depends on it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sentinel.chain.failover import Failover, failover_provider
from sentinel.errors import ChainUnavailable

REVERT_DATA = "0x08c379a0"  # Error(string) selector: enough for a revert reply
TX_HASH = "0x" + "ab" * 32


class Node:
    """A tiny JSON-RPC node on 127.0.0.1 that the test controls (see module doc)."""

    def __init__(self, chain_id: int = 31337, head: int = 100) -> None:
        self.chain_id, self.head = chain_id, head
        self.status = 200  #: HTTP status of every answer (503: a node behind a failing load balancer)
        self.hang = False  #: hold every answer until released (at stop)
        self.revert = False  #: eth_call answers a revert
        self.refusal: str | None = None  #: eth_sendRawTransaction answers this JSON-RPC error
        self.counts: Counter[str] = Counter()
        self.raw: list[str] = []  #: every eth_sendRawTransaction's bytes
        self.paths: list[str] = []
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Node:
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                node.counts[request["method"]] += 1
                node.paths.append(self.path)
                if node.hang:
                    node._release.wait(10)
                    return
                if node.status != 200:
                    self.send_error(node.status)
                    return
                body = json.dumps({"jsonrpc": "2.0", "id": request["id"], **node.answer(request)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: connections are refused until :meth:`start`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._release = threading.Event()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method = request["method"]
        if method == "eth_chainId":
            return {"result": hex(self.chain_id)}
        if method == "eth_blockNumber":
            return {"result": hex(self.head)}
        if method == "eth_getCode":
            return {"result": "0x6000"}
        if method == "eth_call":
            if self.revert:
                return {"error": {"code": 3, "message": "execution reverted", "data": REVERT_DATA}}
            return {"result": "0x"}
        if method == "eth_sendRawTransaction":
            self.raw.append(request["params"][0])
            return {"error": {"code": -32000, "message": self.refusal}} if self.refusal else {"result": TX_HASH}
        return {"error": {"code": -32601, "message": f"method {method} not found"}}

    def served(self) -> int:
        """Requests other than the probes."""
        return sum(n for method, n in self.counts.items() if method not in {"eth_chainId", "eth_blockNumber"})


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def nodes():
    made: list[Node] = []

    def make(**kwargs: Any) -> Node:
        made.append(Node(**kwargs))
        return made[-1]

    yield make
    for node in made:
        node.stop()


def web3_over(failover: Failover) -> Any:
    from web3 import Web3

    return Web3(failover_provider(failover))


def code_at(w3: Any) -> bytes:
    """One request that is not a probe."""
    return bytes(w3.eth.get_code("0x" + "11" * 20))


def by_label(failover: Failover) -> dict[str, dict[str, Any]]:
    return {s["endpoint"]: s for s in failover.status()}


def test_requests_go_to_the_first_healthy_endpoint_in_preference_order(nodes):
    a, b, c = nodes(), nodes(), nodes()
    failover = Failover([b.url, a.url, c.url], timeout=2, clock=Clock())
    w3 = web3_over(failover)
    for _ in range(3):
        assert code_at(w3) == b"\x60\x00"
    assert (b.served(), a.served(), c.served()) == (3, 0, 0)
    assert all(n.counts["eth_chainId"] == 1 for n in (a, b, c))  # each probed once, before the first request
    status = failover.status()
    assert [s["endpoint"] for s in status] == [b.url, a.url, c.url]
    assert [(s["healthy"], s["active"], s["head"]) for s in status] == [(True, True, 100), (True, False, 100),
                                                                        (True, False, 100)]
    assert failover.label == b.url


@pytest.mark.parametrize(("fault", "reason"), [
    ("stopped", "ConnectionError"), ("503", "HTTP 503"), ("hang", "no answer within 0.5 s")])
def test_a_failing_endpoint_fails_over_within_the_same_request(nodes, caplog, fault, reason):
    a, b = nodes(head=100), nodes(head=101)
    clock = Clock()
    failover = Failover([a.url, b.url], timeout=0.5, clock=clock)
    w3 = web3_over(failover)
    assert code_at(w3) == b"\x60\x00" and a.served() == 1
    if fault == "stopped":
        a.stop()
    elif fault == "503":
        a.status = 503
    else:
        a.hang = True
    clock.now += 1  # within the recheck interval: no probe, the request itself meets the fault
    with caplog.at_level(logging.INFO, logger="sentinel.chain.failover"):
        assert code_at(w3) == b"\x60\x00"
    assert b.served() == 1 and b.counts["eth_chainId"] == 1  # one request answered by b, no probe on the way
    if fault != "stopped":
        assert a.served() == 2  # a was asked, failed, and b answered the same request
    state = by_label(failover)
    assert state[a.url]["healthy"] is False and state[a.url]["down_since"] == clock.now
    assert reason in state[a.url]["last_error"] and state[b.url]["active"] is True
    assert f"event=rpc_failover from={a.url} to={b.url} reason='down: eth_getCode: {reason}" in caplog.text
    assert code_at(w3) == b"\x60\x00" and b.served() == 2 and a.served() == (2 if fault != "stopped" else 1)


def test_a_raw_transaction_goes_to_the_backup_with_the_same_bytes(nodes):
    a, b = nodes(), nodes()
    w3 = web3_over(Failover([a.url, b.url], timeout=2, clock=Clock()))
    code_at(w3)
    a.status = 503
    assert "0x" + bytes(w3.eth.send_raw_transaction("0x02f8aa")).hex() == TX_HASH
    assert a.counts["eth_sendRawTransaction"] == 1 and b.raw == ["0x02f8aa"]  # a asked first, b took the same bytes


def test_a_json_rpc_error_reply_is_the_answer_and_never_goes_to_another_endpoint(nodes):
    from web3.exceptions import ContractLogicError, Web3RPCError

    a, b = nodes(), nodes()
    failover = Failover([a.url, b.url], timeout=2, clock=Clock())
    w3 = web3_over(failover)
    a.revert, a.refusal = True, "nonce too low"
    with pytest.raises(ContractLogicError):
        w3.eth.call({"to": "0x" + "11" * 20, "data": "0x"})
    with pytest.raises(Web3RPCError, match="nonce too low"):
        w3.eth.send_raw_transaction("0x02f8aa")
    assert b.served() == 0 and b.raw == []
    assert a.counts["eth_call"] == 1 and a.raw == ["0x02f8aa"]
    assert by_label(failover)[a.url]["healthy"] is True and failover.active is failover.endpoints[0]


def test_a_down_endpoint_is_skipped_until_the_recheck_interval_then_probed_and_preferred_again(nodes, caplog):
    a, b = nodes(), nodes()
    clock = Clock()
    failover = Failover([a.url, b.url], timeout=2, recheck_seconds=15, clock=clock)
    w3 = web3_over(failover)
    code_at(w3)
    a.stop()
    code_at(w3)  # fails over to b; a is down from now
    down_at = clock.now
    a.start()  # back on the same port, but not asked before its interval is over
    asked = sum(a.counts.values())
    clock.now = down_at + 14.9
    code_at(w3)
    assert sum(a.counts.values()) == asked and b.served() == 2
    clock.now = down_at + 15
    with caplog.at_level(logging.INFO, logger="sentinel.chain.failover"):
        code_at(w3)
    assert a.counts["eth_chainId"] == 2 and a.served() == 2  # probed, then it answered the request
    assert b.served() == 2
    state = by_label(failover)[a.url]
    assert (state["healthy"], state["active"], state["down_since"]) == (True, True, None)
    assert "ConnectionError" in state["last_error"]  # what it was, kept after it recovered
    assert f"event=rpc_recovered endpoint={a.url} was=down out_seconds=15" in caplog.text
    assert f"event=rpc_failover from={b.url} to={a.url} reason='preferred endpoint back in service'" in caplog.text


def test_an_endpoint_on_another_chain_is_never_used_and_said_once(nodes, caplog):
    a, other, c = nodes(chain_id=31337), nodes(chain_id=5), nodes(chain_id=31337)
    clock = Clock()
    failover = Failover([a.url, other.url, c.url], timeout=2, recheck_seconds=15, clock=clock)
    w3 = web3_over(failover)
    with caplog.at_level(logging.INFO, logger="sentinel.chain.failover"):
        code_at(w3)
        a.stop()
        for _ in range(3):
            clock.now += 20  # every interval: a probed again, the other chain never
            assert code_at(w3) == b"\x60\x00"
    assert failover.chain_id == 31337
    assert other.served() == 0 and other.counts["eth_chainId"] == 1 and c.served() == 3
    state = by_label(failover)[other.url]
    assert (state["state"], state["healthy"], state["last_error"]) == ("wrong_chain", False, "chain 5, expected 31337")
    assert caplog.text.count("event=rpc_wrong_chain") == 1
    assert f"event=rpc_wrong_chain endpoint={other.url} chain=5 expected=31337" in caplog.text


def test_the_first_endpoint_that_answers_sets_the_chain(nodes):
    down, b, c = nodes(chain_id=5), nodes(chain_id=31337), nodes(chain_id=5)
    down.stop()
    failover = Failover([down.url, b.url, c.url], timeout=2, clock=Clock())
    code_at(web3_over(failover))
    assert failover.chain_id == 31337 and by_label(failover)[c.url]["state"] == "wrong_chain"


def test_a_lagging_endpoint_is_skipped_while_another_is_usable(nodes, caplog):
    a, b = nodes(head=100), nodes(head=105)
    clock = Clock()
    failover = Failover([a.url, b.url], timeout=2, recheck_seconds=15, max_lag_blocks=5, clock=clock)
    w3 = web3_over(failover)
    with caplog.at_level(logging.INFO, logger="sentinel.chain.failover"):
        assert w3.eth.block_number == 105  # a is 5 blocks behind: lagging, b answers
        state = by_label(failover)[a.url]
        assert (state["state"], state["healthy"], state["head"]) == ("lagging", False, 100)
        assert state["last_error"] == "5 blocks behind (head 100, best 105)"
        assert f"event=rpc_lagging endpoint={a.url} head=100 best=105 behind=5" in caplog.text
        b.stop()  # the only healthy one gone: late data beats none
        assert w3.eth.block_number == 100
        b.start()
        a.head, b.head = 104, 108  # 4 behind: within the limit
        clock.now += 15
        assert w3.eth.block_number == 104
    assert by_label(failover)[a.url]["state"] == "up" and failover.active is failover.endpoints[0]
    assert f"event=rpc_recovered endpoint={a.url} was=lagging" in caplog.text


def test_when_every_endpoint_fails_chain_raises_chain_unavailable_naming_each(nodes):
    from sentinel.chain.client import Chain

    a, b = nodes(), nodes()
    chain = Chain(a.url, fallbacks=[b.url], recheck_seconds=15)
    chain.stop_retrying()
    assert chain.chain_id == 31337 and chain.rpc_url == a.url and chain.failover is not None
    provider: Any = chain.w3.provider
    assert provider.status() == chain.rpc_status()  # stop_retrying kept the failover provider
    a.stop()
    b.status = 503
    with pytest.raises(ChainUnavailable) as down:
        chain.code("0x" + "11" * 20)
    message = str(down.value)
    assert message.startswith(f"{a.url},{b.url}: eth_getCode: no endpoint answered")
    assert f"{a.url} down: eth_getCode: ConnectionError" in message
    assert f"{b.url} down: eth_getCode: HTTP 503" in message
    assert [s["healthy"] for s in chain.rpc_status() or []] == [False, False]
    b.status = 200  # with nothing in service, the next request probes the down ones at once
    assert chain.code("0x" + "11" * 20) == b"\x60\x00" and chain.rpc_url == b.url


def test_a_chain_without_fallbacks_is_one_plain_endpoint(nodes):
    from sentinel.chain.client import Chain

    a = nodes()
    chain = Chain(a.url)
    assert chain.failover is None and chain.rpc_status() is None and chain.rpc_url == a.url
    assert type(chain.w3.provider).__name__ == "HTTPProvider"


def test_urls_with_api_keys_never_reach_the_logs_or_the_status(nodes, caplog):
    a, b = nodes(), nodes()
    secret_a, secret_b = "KEYAAAA1234", "KEYBBBB5678"
    url_a = f"http://relay:hunter2@127.0.0.1:{a.port}/v3/{secret_a}"
    url_b = f"http://127.0.0.1:{b.port}/rpc?apikey={secret_b}"
    clock = Clock()
    with caplog.at_level(logging.DEBUG):  # everything, urllib3's request lines included (`sentinel -v`)
        failover = Failover([url_a, url_b], timeout=2, clock=clock)
        w3 = web3_over(failover)
        code_at(w3)
        a.stop()
        code_at(w3)
        a.start()
        clock.now += 15
        code_at(w3)
        a.stop()
        b.stop()
        with pytest.raises(ChainUnavailable) as down:
            code_at(w3)
    assert a.paths[0] == f"/v3/{secret_a}" and b.paths[0] == f"/rpc?apikey={secret_b}"  # the keys were sent
    shown = caplog.text + str(down.value) + json.dumps(failover.status())
    for secret in (secret_a, secret_b, "hunter2"):
        assert secret not in shown
    assert "event=rpc_failover" in caplog.text and "event=rpc_recovered" in caplog.text
    assert '"POST <redacted> HTTP/1.1" 200' in caplog.text  # urllib3's line was there, its path replaced


def test_rpc_urls_come_from_the_environment_and_show_as_scheme_and_host(tmp_path, run_cli, monkeypatch):
    from sentinel.config import load_config

    key = "KEYCCCC9012"
    urls = f"https://node.example/v3/{key}, https://backup.example:8443/?apikey={key}"
    monkeypatch.setenv("SENTINEL_RELAY__RPC_URLS", urls)
    relay = load_config(tmp_path).relay
    assert relay.rpc_urls == (f"https://node.example/v3/{key}", f"https://backup.example:8443/?apikey={key}")
    assert (relay.rpc_recheck_seconds, relay.rpc_max_lag_blocks) == (15.0, 5)
    code, out, _ = run_cli("--root", tmp_path, "config")
    assert code == 0 and key not in out
    assert 'relay.rpc_urls = ["https://node.example", "https://backup.example:8443"]' in out


def test_the_relay_connects_over_rpc_urls_and_healthz_lists_each_endpoint(tmp_path, nodes, monkeypatch):
    from sentinel.artifacts import ArtifactLayout
    from sentinel.config import load_config
    from sentinel.relay.daemon import Relay

    for name in ("SENTINEL_RELAY_KEY", "SENTINEL_ATTESTER_KEYS"):
        monkeypatch.delenv(name, raising=False)  # demo keys: the nodes say chain 31337
    down, up = nodes(), nodes()
    down.stop()
    layout = ArtifactLayout(tmp_path)
    layout.deployments.parent.mkdir(parents=True, exist_ok=True)
    layout.deployments.write_text(json.dumps({
        "chain_id": 31337, "rpc_url": "http://127.0.0.1:1", "block": 1, "deployed_at": "", "deployer": "",
        "governance": "", "guardian": "", "attesters": [], "quorum": 2, "timelock_seconds": 3600, "score_scale": 0,
        "policy": {}, "circuit": {}, "contracts": {"SentinelBreaker": {"address": "0x" + "11" * 20, "abi": []}},
        "compiler": ""}))
    layout.circuit_manifest.parent.mkdir(parents=True, exist_ok=True)
    layout.circuit_manifest.write_text(json.dumps({"window": 50, "cadence_seconds": 60}))
    config = load_config(tmp_path, {"relay.rpc_urls": f"{down.url},{up.url}", "relay.rpc_url": "http://127.0.0.1:2",
                                    "relay.attesters": "http://127.0.0.1:9"}, env={})
    relay = Relay(layout, config, data=tmp_path / "feed.csv", db=tmp_path / "queue.sqlite")
    try:
        assert relay.health()["rpc"] is None  # not connected yet
        relay.connect()
        health = relay.health()
    finally:
        relay.close()
    assert up.counts["eth_getCode"] == 1 and relay.chain.rpc_url == up.url
    assert [(s["endpoint"], s["healthy"], s["active"]) for s in health["rpc"]] == [(down.url, False, False),
                                                                                  (up.url, True, True)]
    assert "ConnectionError" in health["rpc"][0]["last_error"]
    # an explicit endpoint (`--rpc`) is that one alone, whatever relay.rpc_urls says
    single = Relay(layout, config, rpc=up.url, data=tmp_path / "feed.csv", db=tmp_path / "queue.sqlite")
    single.close()
    assert (single.rpc, single.rpc_fallbacks) == (up.url, ())
