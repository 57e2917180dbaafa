"""A recording JSON-RPC forwarder: stands between a client and a node, and writes down every method asked.

The relay tests put one in front of the main RPC and one as the relay's
private submission endpoint, then check which methods went where. With
``hold`` set, eth_sendRawTransaction is answered here (the transaction's hash)
and kept instead of forwarded, like a builder that has the transaction but has
not included it yet; :meth:`RpcRecorder.release` forwards what was held.

Bounded: requests larger than :data:`MAX_BODY` are refused, each upstream call
times out after :data:`UPSTREAM_TIMEOUT` seconds, at most :data:`MAX_RECORDS`
method names are kept (the total is still counted), and :meth:`stop` shuts the
server and its threads down (call it in a ``finally``).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20
UPSTREAM_TIMEOUT = 10.0
MAX_RECORDS = 100_000


class RpcRecorder:
    """Forwards JSON-RPC POSTs on 127.0.0.1:<port> to ``upstream`` and records their method names."""

    def __init__(self, upstream: str, *, hold: bool = False) -> None:
        self.upstream = upstream
        self.hold = hold
        self.methods: deque[str] = deque(maxlen=MAX_RECORDS)
        self.total = 0
        self.raw: deque[str] = deque(maxlen=MAX_RECORDS)  #: every eth_sendRawTransaction's transaction, in order
        self.held: list[str] = []  #: raw transactions kept while ``hold`` was set, oldest first
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY:
                    self.send_error(413 if length else 411)
                    return
                status, body = recorder._handle(self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-recorder", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def counts(self) -> Counter[str]:
        """How many times each method was asked."""
        with self._lock:
            return Counter(self.methods)

    def release(self) -> list[Any]:
        """Forward every held raw transaction upstream (oldest first) and stop holding; the node's answers."""
        with self._lock:
            held, self.held, self.hold = self.held, [], False
        return [self._forward({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]})
                for i, raw in enumerate(held)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handle(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = json.loads(body)
        except ValueError:
            return 400, b'{"error": "not JSON"}'
        calls = request if isinstance(request, list) else [request]
        answers = []
        for call in calls:
            method = str(call.get("method")) if isinstance(call, dict) else "<malformed>"
            with self._lock:
                self.methods.append(method)
                self.total += 1
                if method == "eth_sendRawTransaction":
                    self.raw.append(call["params"][0])
                keep = self.hold and method == "eth_sendRawTransaction"
                if keep:
                    self.held.append(call["params"][0])
            answer = ({"jsonrpc": "2.0", "id": call.get("id"), "result": _tx_hash(call["params"][0])} if keep
                      else self._forward(call))
            if answer is None:  # the upstream is unreachable: a gateway error, as a real proxy answers
                return 502, b'{"error": "upstream unreachable"}'
            answers.append(answer)
        return 200, json.dumps(answers if isinstance(request, list) else answers[0]).encode()

    def _forward(self, call: Any) -> Any:
        """The upstream's answer to one call, or None if it cannot be reached."""
        request = urllib.request.Request(self.upstream, data=json.dumps(call).encode(),  # noqa: S310 - test node
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT) as response:  # noqa: S310
                return json.loads(response.read())
        except OSError:
            return None


def _tx_hash(raw: str) -> str:
    from eth_utils.crypto import keccak
    from hexbytes import HexBytes

    return "0x" + keccak(HexBytes(raw)).hex()
