"""``sentinel attester serve`` as a real subprocess, on the session's tiny circuit and a real Anvil.

The service has its own keyfile (demo account 2, mode 600), its own copy of
the feed the session's proof bundle was cut from, and its own node (the
Anvil, its clock just after the bundle's window end). Every process started
here is stopped by pid.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.chain import anvil, eip712
from sentinel.chain.breaker import BREAKER
from sentinel.chain.deploy import Deployment, deploy_all
from sentinel.chain.encoding import AttestationMessage, ProofBundle, read_bundle
from sentinel.chain.keys import demo_key
from sentinel.config import load_config
from tests.support.projects import linked_project

pytestmark = pytest.mark.integration

KEY = demo_key(2)


@pytest.fixture(scope="module")
def project(tiny_circuit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root on the tiny circuit (linked, never written) with its own .sentinel/."""
    return linked_project(tiny_circuit, tmp_path_factory.mktemp("attester-project"))


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> ProofBundle:
    return read_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def node(bundle: ProofBundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path_factory.mktemp("anvil") / "anvil.log",
                          timestamp=bundle.window_end_unix + 30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        anvil.stop_process(process.pid)


@pytest.fixture(scope="module")
def deployment(node: str, project: Path) -> Deployment:
    return deploy_all(ArtifactLayout(project), load_config(project, env={}), node)


@dataclass
class Service:
    """One ``sentinel attester serve`` process and how to talk to it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    startup_seconds: float = 0.0

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:  # noqa: S310 - a local test URL
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(), dict(exc.headers)
        kind = got.get("content-type", "")
        return status, json.loads(raw) if kind.startswith("application/json") else raw.decode(), got

    def attest(self, **body: Any) -> tuple[int, dict[str, Any]]:
        status, payload, _ = self.request("POST", "/v1/attest", json.dumps(body).encode())
        return status, payload

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def ask(deployment: Deployment, window_id: int, window_end: int, input_hash: int, **change: Any) -> dict[str, Any]:
    return {"chain_id": deployment.chain_id, "breaker": deployment.address(BREAKER), "window_id": window_id,
            "window_end": window_end, "input_hash": f"0x{input_hash:064x}", **change}


@pytest.fixture
def party(project: Path, tiny_feed: Path, tmp_path: Path) -> dict[str, Path]:
    """This party's own files: a mode-600 keyfile of demo account 2, its copy of the feed, its record."""
    keyfile = tmp_path / "attester.key"
    keyfile.write_text(KEY.secret + "\n")
    keyfile.chmod(0o600)
    feed = tmp_path / "own-feed.csv"
    shutil.copy(tiny_feed, feed)
    return {"keyfile": keyfile, "feed": feed, "record": tmp_path / "signed.sqlite", "tmp": tmp_path}


def start(project: Path, party: dict[str, Path], node: str, *, port: int | None = None,
          keyfile: Path | None = None, wait: bool = True, **settings: str) -> Service:
    """Start the service as a subprocess (``settings``: attester settings by env); with ``wait``, until /healthz
    answers 200."""
    port = port or anvil.free_port()
    log = party["tmp"] / f"attester-{time.monotonic_ns()}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update({f"SENTINEL_ATTESTER__{k.upper()}": v for k, v in settings.items()})
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "--root", str(project), "attester", "serve",
             "--data", str(party["feed"]), "--keyfile", str(keyfile or party["keyfile"]), "--port", str(port),
             "--rpc", node, "--record", str(party["record"])],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    service = Service(process, port, log)
    if not wait:
        return service
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the attester exited with {process.returncode} during start-up:\n{service.text()}")
        try:
            if service.request("GET", "/healthz")[0] == 200:
                service.startup_seconds = time.monotonic() - started
                return service
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    stop(service)
    pytest.fail(f"the attester was not ready within 60 s:\n{service.text()}")


def stop(service: Service, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> int:
    """SIGTERM (or ``sig``) and wait for its exit code (SIGKILL, and a failure, if it does not stop)."""
    if service.process.poll() is None:
        service.process.send_signal(sig)
    try:
        return service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait(10)
        pytest.fail(f"the attester did not stop within {timeout:g} s of SIGTERM:\n{service.text()}")


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Every service a test starts, stopped by pid at the end whatever happened."""
    started: list[Service] = []
    yield started
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)


def metric(text: str, name: str) -> float:
    """A sample's value in Prometheus text."""
    values = [float(line.rpartition(" ")[2]) for line in text.splitlines() if line.rpartition(" ")[0] == name]
    assert len(values) == 1, f"{name} not in /metrics"
    return values[0]


def assert_no_secret(service: Service) -> None:
    text = service.text()
    assert KEY.secret.removeprefix("0x") not in text.lower()


def test_it_signs_the_real_window_and_refuses_what_it_cannot_check(project, party, node, deployment, bundle,
                                                                   services):
    service = start(project, party, node)
    services.append(service)
    wid, end, real = bundle.window_id, bundle.window_end_unix, bundle.input_hash
    message = AttestationMessage(wid, end, real)

    status, payload = service.attest(**ask(deployment, wid, end, real))
    assert status == 200, payload
    assert payload["signer"] == KEY.address
    signature = bytes.fromhex(payload["signature"].removeprefix("0x"))
    assert len(signature) == 65
    assert eip712.recover(signature, deployment.chain_id, deployment.address(BREAKER), message) == KEY.address
    assert re.search(rf"event=signed window={wid} end={end} hash=0x{real:064x} stored=signed hash_seconds=\d+\.\d+",
                     service.text())

    # the same again: the stored signature, no second one
    assert service.attest(**ask(deployment, wid, end, real)) == (200, payload)

    # the window before, with a wrong hash: its own rows hash otherwise, and it names them
    status, payload = service.attest(**ask(deployment, wid - 1, end - 60, real))
    assert status == 409
    error = payload["error"]
    assert f"is not the hash of its own rows of window {wid - 1}" in error and str(party["feed"]) in error
    assert re.search(r"lines \d+\.\.\d+", error) and f"0x{real:064x}" in error
    assert len(re.findall(r"0x[0-9a-f]{64}", error)) == 2  # both hashes

    status, payload = service.attest(**ask(deployment, wid + 1, end + 60, real))
    assert status == 422 and "not yet in its feed" in payload["error"]
    status, payload = service.attest(**ask(deployment, wid + 1, end, real))
    assert status == 422 and "does not match window end" in payload["error"]
    status, payload = service.attest(**ask(deployment, wid, end, real, breaker="0x" + "12" * 20))
    assert status == 422 and "unknown breaker" in payload["error"]
    status, payload = service.attest(**ask(deployment, wid, end, real, chain_id=1))
    assert status == 422 and "wrong chain" in payload["error"]
    status, payload = service.attest(**ask(deployment, wid, end, real, extra=1))
    assert status == 422 and "field 'extra'" in payload["error"]

    status, payload, _ = service.request("POST", "/v1/attest", b"{not json")
    assert status == 422 and "not JSON" in payload["error"]
    big = json.dumps({**ask(deployment, wid, end, real), "pad": "x" * 4096}).encode()
    status, payload, _ = service.request("POST", "/v1/attest", big)
    assert status == 413
    # without a Content-Length (chunked), the cap applies to the bytes read
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    connection.request("POST", "/v1/attest", body=iter([big[:1000], big[1000:]]),
                       headers={"Content-Type": "application/json"}, encode_chunked=True)
    assert connection.getresponse().status == 413
    connection.close()

    status, health, _ = service.request("GET", "/healthz")
    assert status == 200 and health["ready"] and health["signer"] == KEY.address
    assert (health["chain_id"], health["breaker"]) == (deployment.chain_id, deployment.address(BREAKER))
    assert health["last_signed_window"] == wid and health["newest_row_end"] == end
    assert health["counts"] == {"signed": 1, "repeat": 1, "hash_mismatch": 1, "not_in_feed": 1, "window_id": 1,
                                "unknown_breaker": 1, "wrong_chain": 1, "malformed": 1, "not_json": 1,
                                "too_large": 2}
    assert health["last_hash_seconds"] > 0
    status, metrics, _ = service.request("GET", "/metrics")
    assert status == 200
    assert metric(metrics, "sentinel_attester_signed_total") == 1
    assert metric(metrics, 'sentinel_attester_refused_total{reason="hash_mismatch"}') == 1
    assert metric(metrics, 'sentinel_attester_refused_total{reason="too_large"}') == 2
    assert metric(metrics, "sentinel_attester_last_signed_window") == wid
    assert metric(metrics, "sentinel_attester_request_seconds_count") == sum(health["counts"].values())
    assert metric(metrics, "sentinel_attester_feed_lag_seconds") == pytest.approx(health["feed_lag_seconds"], abs=5)

    assert stop(service) == 0
    assert "event=stopped" in service.text()
    assert_no_secret(service)


def test_its_record_survives_a_restart(project, party, node, deployment, bundle, services):
    wid, end, real = bundle.window_id, bundle.window_end_unix, bundle.input_hash
    first = start(project, party, node)
    services.append(first)
    status, signed = first.attest(**ask(deployment, wid, end, real))
    assert status == 200
    assert stop(first) == 0

    second = start(project, party, node)
    services.append(second)
    status, payload = second.attest(**ask(deployment, wid, end, real ^ 1))
    assert status == 409
    assert payload["error"] == (f"already signed input hash 0x{real:064x} (window end {end}) for window {wid} of "
                                f"breaker {deployment.address(BREAKER)}; refusing to sign another")
    assert second.attest(**ask(deployment, wid, end, real)) == (200, signed)
    assert "stored=repeat" in second.text()
    assert stop(second) == 0
    assert_no_secret(first)
    assert_no_secret(second)


def test_start_up_errors_are_one_line(project, party, node, deployment, services):
    loose = party["tmp"] / "loose.key"
    loose.write_text(KEY.secret + "\n")
    loose.chmod(0o644)
    service = start(project, party, node, keyfile=loose, wait=False)
    services.append(service)
    assert service.process.wait(60) == 1
    assert service.text().strip().splitlines()[-1].startswith(f"error: {loose}: attester keyfile is readable by")
    assert_no_secret(service)

    stranger = party["tmp"] / "stranger.key"  # demo account 7: not one of the breaker's attesters
    stranger.write_text(demo_key(7).secret + "\n")
    stranger.chmod(0o600)
    running = start(project, {**party, "record": party["tmp"] / "stranger.sqlite"}, node, keyfile=stranger)
    services.append(running)
    assert f"event=not_registered signer={demo_key(7).address}" in running.text()  # a warning: it still starts
    clash = start(project, {**party, "record": party["tmp"] / "other.sqlite"}, node, port=running.port, wait=False)
    services.append(clash)
    assert clash.process.wait(60) == 1
    assert clash.text().strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{running.port}")
    assert stop(running) == 0


def test_a_client_over_its_rate_is_told_when_to_come_back(project, party, node, deployment, bundle, services):
    service = start(project, party, node, rate_per_second="0.2", rate_burst="2")
    services.append(service)
    wid, end, real = bundle.window_id, bundle.window_end_unix, bundle.input_hash
    body = json.dumps(ask(deployment, wid, end, real, chain_id=1)).encode()
    answers = [service.request("POST", "/v1/attest", body) for _ in range(3)]  # /healthz took one or two tokens
    assert [a[0] for a in answers][-1] == 429 and set([a[0] for a in answers][:-1]) <= {422, 429}
    _, payload, headers = answers[-1]
    assert "rate limit" in payload["error"]
    assert 1 <= int(headers["retry-after"]) <= 5
    assert "event=refused reason=rate_limited" not in service.text()  # counted, not logged
    assert "server" not in {k.lower() for k in headers}
    assert stop(service) == 0


def test_a_window_older_than_max_age_by_the_nodes_clock_is_refused(project, party, node, deployment, bundle,
                                                                   services):
    wid, end, real = bundle.window_id, bundle.window_end_unix, bundle.input_hash
    service = start(project, party, node)
    services.append(service)
    snapshot = anvil.rpc(node, "evm_snapshot")
    try:
        anvil.rpc(node, "evm_setNextBlockTimestamp", [end + 1801])
        anvil.rpc(node, "evm_mine")
        status, payload = service.attest(**ask(deployment, wid, end, real))
        assert status == 422 and f"window {wid} is stale" in payload["error"] and "latest block" in payload["error"]
    finally:
        anvil.rpc(node, "evm_revert", [snapshot])
    assert stop(service, sig=signal.SIGINT) == 0
