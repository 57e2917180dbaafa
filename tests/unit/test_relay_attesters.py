"""The relay's side of attestation: what counts as a signature, and when it stops asking.

Stand-in attester services on 127.0.0.1 answer ``POST /v1/attest`` with real
EIP-712 signatures (or with what a broken or hostile one would send); the
real service is tested in tests/integration/test_attester.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sentinel.chain import eip712
from sentinel.chain.encoding import AttestationMessage
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from sentinel.errors import ConfigError
from sentinel.relay.attesters import collect, request_body

CHAIN = 31337
BREAKER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
MESSAGE = AttestationMessage(window_id=29_000_000, window_end=1_740_000_000, input_hash=0x1234)
A, B, C, OUTSIDER = demo_key(2), demo_key(3), demo_key(4), demo_key(9)
REGISTERED = {k.address.lower() for k in (A, B, C)}

Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def signs_as(key: Any, *, claim: str | None = None, message: AttestationMessage = MESSAGE,
             delay: float = 0.0) -> Reply:
    """An attester that signs ``message`` with ``key`` (claiming ``claim`` as signer, if given)."""
    def reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        time.sleep(delay)
        signer, signature = eip712.sign(key.secret, CHAIN, BREAKER, message)
        return 200, {"signer": claim or signer, "signature": "0x" + signature.hex()}
    return reply


def refuses(status: int, error: str) -> Reply:
    return lambda body: (status, {"error": error})


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], str]]:
    """Start a stand-in attester answering with ``reply``; returns its URL. Every request body is kept."""
    servers: list[ThreadingHTTPServer] = []

    def start(reply: Reply) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.seen.append((self.path, body))  # type: ignore[attr-defined]
                status, payload = reply(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]  # client gave up
        server.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def gather(urls: list[str], quorum: int = 2, timeout: float = 5.0) -> Any:
    return collect(tuple(urls), MESSAGE, chain_id=CHAIN, breaker=BREAKER, registered=REGISTERED, quorum=quorum,
                   timeout=timeout)


def test_the_request_names_breaker_chain_window_and_hash(serve):
    url = serve(signs_as(A))
    gather([url], quorum=1)
    assert request_body(MESSAGE, CHAIN, BREAKER) == {
        "chain_id": CHAIN, "breaker": BREAKER, "window_id": MESSAGE.window_id, "window_end": MESSAGE.window_end,
        "input_hash": "0x" + "0" * 60 + "1234"}


def test_quorum_from_registered_signers_and_every_answer_accounted(serve):
    urls = [serve(signs_as(A)), serve(refuses(409, "rows hash differently")), serve(signs_as(B))]
    got = gather(urls, quorum=2, timeout=5)
    assert got.complete
    assert {s.lower() for s, _ in got.attestation.signatures} == {A.address.lower(), B.address.lower()}
    outcomes = sorted(a.outcome for a in got.answers)
    # the 409 may or may not be in before the second signature; signatures never miss
    assert outcomes.count("signed") == 2
    for signer, signature in got.attestation.signatures:
        assert eip712.recover(signature, CHAIN, BREAKER, MESSAGE) == signer


def test_refused_down_and_slow_attesters_leave_a_shortfall_that_says_why(serve):
    refusing = serve(refuses(409, "input hash 0x..1234 differs from rows 3..52 of feed.csv"))
    down = "http://127.0.0.1:9"  # discard port: nothing listens
    slow = serve(signs_as(C, delay=2.0))
    started = time.monotonic()
    got = gather([serve(signs_as(A)), refusing, down, slow], quorum=2, timeout=0.5)
    assert time.monotonic() - started < 1.8  # the slow one is not waited for past the timeout
    assert not got.complete
    assert len(got.attestation.signatures) == 1
    by_outcome = {a.outcome for a in got.answers}
    assert {"signed", "refused", "unavailable"} <= by_outcome
    line = got.shortfall()
    assert line.startswith("1 of 2 signatures")
    assert "differs from rows 3..52" in line and "unavailable" in line


def test_a_signature_is_kept_only_if_it_recovers_to_a_registered_named_signer(serve):
    wrong_message = AttestationMessage(MESSAGE.window_id, MESSAGE.window_end, MESSAGE.input_hash + 1)
    urls = [serve(signs_as(OUTSIDER)),  # a real signature, by a key the breaker does not know
            serve(signs_as(A, claim=B.address)),  # claims to be another attester
            serve(signs_as(C, message=wrong_message)),  # signed something else
            serve(lambda body: (200, {"signer": A.address, "signature": "0x1234"})),  # not a signature
            serve(lambda body: (200, {"ok": True}))]
    got = gather(urls, quorum=1)
    assert not got.attestation.signatures
    outcomes = sorted(a.outcome for a in got.answers)
    assert outcomes == ["invalid", "invalid", "invalid", "invalid", "unregistered"]


def test_the_same_signer_through_two_services_counts_once(serve):
    got = gather([serve(signs_as(A)), serve(signs_as(A))], quorum=2)
    assert not got.complete
    assert [a.outcome for a in got.answers].count("signed") == 1


def test_asking_stops_at_quorum(serve):
    started = time.monotonic()
    got = gather([serve(signs_as(A)), serve(signs_as(B)), serve(signs_as(C, delay=2.0))], quorum=2, timeout=10)
    assert got.complete
    assert time.monotonic() - started < 1.8


def test_attester_urls_are_checked_and_kept_out_of_config_output(tmp_path):
    config = load_config(tmp_path, env={"SENTINEL_RELAY__ATTESTERS": "http://a.example:9480, https://b.example/k"})
    assert config.relay.attesters == ("http://a.example:9480", "https://b.example/k")
    (tmp_path / "sentinel.toml").write_text('[relay]\nattesters = ["http://a:1", "http://b:2"]\n')
    assert load_config(tmp_path, env={}).relay.attesters == ("http://a:1", "http://b:2")
    with pytest.raises(ConfigError, match=r"relay.attesters\[1\] must be an http\(s\) URL"):
        load_config(tmp_path, {"relay.attesters": "http://a:1,ftp://b"}, env={})
    with pytest.raises(ConfigError, match="appears twice"):
        load_config(tmp_path, {"relay.attesters": "http://a:1,http://a:1/"}, env={})
    (tmp_path / "sentinel.toml").write_text('[relay]\nattesters = [1, 2]\n')
    with pytest.raises(ConfigError, match="not a list of strings"):
        load_config(tmp_path, env={})


def test_the_relay_refuses_to_start_without_attesters(tmp_path):
    from sentinel.artifacts import ArtifactLayout
    from sentinel.errors import RelayError
    from sentinel.relay.daemon import Relay

    with pytest.raises(RelayError, match=r"market default: no attester services"):
        Relay(ArtifactLayout(tmp_path), load_config(tmp_path, env={}), db=tmp_path / "q.sqlite")


def test_an_answer_after_the_quorum_is_still_heard(serve):
    """A party slower than the quorum is not waited for, but its answer (here a refusal: its copy of the feed
    disagrees) reaches ``on_late`` when it comes, so the relay logs it."""
    late: list[Any] = []
    heard = threading.Event()

    def on_late(answer: Any) -> None:
        late.append(answer)
        heard.set()

    def refuses_slowly(body: Any) -> tuple[int, dict[str, Any]]:
        time.sleep(0.5)
        return 409, {"error": "rows 3..52 hash differently"}

    slow_refusal = serve(refuses_slowly)
    started = time.monotonic()
    got = collect((serve(signs_as(A)), serve(signs_as(B)), slow_refusal), MESSAGE, chain_id=CHAIN, breaker=BREAKER,
                  registered=REGISTERED, quorum=2, timeout=5, on_late=on_late)
    assert got.complete and time.monotonic() - started < 0.45  # not waited for
    assert heard.wait(5)
    (answer,) = late
    assert answer.outcome == "refused" and "hash differently" in answer.detail
