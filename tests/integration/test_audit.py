"""``sentinel audit`` on a real Anvil with real EZKL proofs: a clean run audits clean, each tamper is found.

Own Anvil for this module (free port; its genesis lies before the audited
windows, which the contracts module's node does not), snapshot/revert per
test. The run: consecutive windows of the session feed proven with the tiny
circuit, attested by demo attesters and submitted with the chain's clock at
each window's end; one window is skipped (a gap), the breaker trips on the
high scores (or the guardian trips it) and governance recovers it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.audit.findings import AuditReport
from sentinel.audit.run import AuditRequest, run_audit
from sentinel.chain import anvil
from sentinel.chain.breaker import (
    BREAKER,
    breaker_state,
    connect,
    contract,
    sign_message,
    submit_batch_signed,
    submit_signed,
)
from sentinel.chain.client import Chain
from sentinel.chain.deploy import OPTIMIZER_RUNS, ZERO_ADDRESS, deploy_all, verifier_contract
from sentinel.chain.encoding import (
    BatchBundle,
    ProofBundle,
    message_for,
    messages_for_batch,
    read_batch_bundle,
    read_bundle,
)
from sentinel.chain.keys import Key, demo_key
from sentinel.config import load_config
from sentinel.errors import ContractRevert

pytestmark = pytest.mark.integration

GOV, GUARDIAN = demo_key(0), demo_key(1)
A2, A3, A4, NEW_ATTESTER = demo_key(2), demo_key(3), demo_key(4), demo_key(6)
TIMELOCK, MAX_AGE, WINDOWS, SKIPPED, OTHER = 3600, 86400, 5, 1, 1  # proofs cost ~12-24 s each: few
SCORE_TOLERANCE = 0.02  # the tiny circuit's fidelity tolerance (conftest TINY_TOML)


@pytest.fixture(scope="module")
def float_by_end(tiny_circuit: Path, tiny_feed: Path) -> dict[int, float]:
    """The tiny model's float score of every window of the feed, by window end: what the auditor computes."""
    from sentinel.audit.rows import float_scores, load_archives, window_ends, windows_at
    from sentinel.zk.manifest import load_manifest

    layout = ArtifactLayout(tiny_circuit)
    size = int(load_manifest(layout)["window"])
    (archive,) = load_archives([tiny_feed])
    ends = window_ends(archive, size, since=0, until=float("inf"))
    scores = float_scores(layout.onnx_model, windows_at(archive, [row for _, row in ends], size))
    return {end: float(score) for (end, _), score in zip(ends, scores, strict=True)}


@pytest.fixture(scope="module")
def run_windows(tiny_circuit: Path, other_model_circuit: Path, tiny_feed: Path,
                float_by_end: dict[int, float]) -> dict[str, list[Any]]:
    """WINDOWS consecutive windows proven with the tiny model (the run ends on a rise: the last three score
    highest, the skipped one clearly less), the OTHER following windows proven with the other model, and the K
    windows following them proven in one batch proof with the tiny model's batch circuit."""
    from sentinel.data.io import read_market_csv
    from sentinel.zk.manifest import load_manifest
    from sentinel.zk.prove import Prover

    layout = ArtifactLayout(tiny_circuit)
    prover = Prover(layout, load_config(tiny_circuit, env={}))
    market = read_market_csv(tiny_feed)
    times = market.timestamps_unix()
    ends = [row for row in range(len(times)) if int(times[row]) in float_by_end]
    scores = [float_by_end[int(times[row])] for row in ends]
    k = int(load_manifest(layout)["batch"]["windows"])
    n = WINDOWS + max(OTHER, k)
    # Runs of n consecutive rows whose last three tiny windows can trip the breaker (its lowest threshold is
    # 0.5); of those, the one whose skipped window scores furthest below them: skipping it hides nothing, so a
    # clean run audits clean with the suppression check too.
    starts = [i for i in range(len(ends) - n + 1) if ends[i + n - 1] - ends[i] == n - 1
              and min(scores[i + WINDOWS - 3 : i + WINDOWS]) >= 0.51]
    best = max(starts, key=lambda i: min(scores[i + WINDOWS - 3 : i + WINDOWS]) - scores[i + SKIPPED])
    rows = [int(r) for r in ends[best : best + n]]
    tiny = [read_bundle(prover.prove_end_row(market, r).bundle) for r in rows[:WINDOWS]]
    other_prover = Prover(ArtifactLayout(other_model_circuit), load_config(other_model_circuit, env={}))
    other = [read_bundle(other_prover.prove_end_row(market, r).bundle) for r in rows[WINDOWS:WINDOWS + OTHER]]
    batch_prover = Prover(layout.batch(), load_config(tiny_circuit, env={}))
    batch = read_batch_bundle(batch_prover.prove_windows(market, rows[WINDOWS:WINDOWS + k]).bundle)
    return {"tiny": tiny, "other": other, "batch": [batch]}


@pytest.fixture(scope="module")
def node(run_windows: dict[str, list[Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    genesis = run_windows["tiny"][0].window_end_unix - 600
    port = anvil.free_port()
    process = anvil.spawn(port, 31337, log=tmp_path_factory.mktemp("anvil-audit") / "anvil.log", timestamp=genesis)
    yield f"http://127.0.0.1:{port}"
    anvil.stop_process(process.pid)


def _deploy(node: str, model_root: Path, root: Path, trip: float) -> tuple[Chain, Any, str]:
    """Verifier of ``model_root``'s circuit, breaker, token and vault; returns chain, breaker and verifier address."""
    (root / "circuits").mkdir(parents=True)
    for name in ("manifest.json", "Halo2Verifier.json"):
        shutil.copy(model_root / "circuits" / name, root / "circuits" / name)
    if (model_root / "circuits" / "batch").is_dir():  # the model's batch circuit, named by its manifest
        (root / "circuits" / "batch").mkdir()
        for name in ("manifest.json", "Halo2Verifier.json"):
            shutil.copy(model_root / "circuits" / "batch" / name, root / "circuits" / "batch" / name)
    config = load_config(root, {
        "chain.trip_threshold": trip, "chain.reset_threshold": round(trip - 0.05, 4), "chain.trip_after": 3,
        "chain.reset_after": 2, "chain.cooldown_seconds": 60, "chain.max_age_seconds": MAX_AGE,
        "chain.timelock_seconds": TIMELOCK, "chain.quorum": 2}, env={})
    deployment = deploy_all(ArtifactLayout(root), config, node)
    chain = connect(deployment, config)
    return chain, contract(chain, deployment, BREAKER), deployment.address("Halo2Verifier")


@dataclass
class Run:
    node: str
    chain: Chain
    breaker: Any
    verifier: str
    windows: dict[str, list[Any]]  #: "tiny" and "other": ProofBundle, "batch": BatchBundle
    tiny: Path
    other: Path
    trip: float = 0.9

    def warp_to(self, unix: int) -> None:
        if unix > anvil.chain_time(self.node):
            anvil.warp(self.node, unix)

    def submit(self, bundle: ProofBundle, keys: Sequence[Key] = (A2, A3)) -> None:
        self.warp_to(bundle.window_end_unix + 30)
        signed = sign_message(message_for(bundle), list(keys), self.chain.chain_id, self.breaker.address)
        submit_signed(self.chain, self.breaker, bundle, signed, GOV, quorum=2)

    def gov(self, function: Any, key: Key = GOV) -> Any:
        return self.chain.transact(function, key, "governance call")

    def audit(self, artifacts: tuple[Path, ...] | None = None, data: tuple[Path, ...] = (),
              breaker: str | None = None, from_block: int = 0) -> AuditReport:
        return run_audit(AuditRequest(
            rpc_url=self.node, breaker=breaker or self.breaker.address, artifacts=artifacts or (self.tiny,),
            breaker_source=ArtifactLayout(self.tiny).breaker_source, breaker_optimizer_runs=OPTIMIZER_RUNS,
            data=data, from_block=from_block, workers=1, score_tolerance=SCORE_TOLERANCE))


@pytest.fixture(scope="module")
def deployed(node: str, run_windows: dict[str, list[Any]], tiny_circuit: Path, other_model_circuit: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Run:
    tiny = run_windows["tiny"]
    trip = round(min(b.score for b in tiny[WINDOWS - 3 :]) - 0.005, 4)
    trip = min(max(trip, 0.5), 1.0)  # the contract's bounds; below 0.5 the guardian trips instead
    chain, breaker, verifier = _deploy(node, tiny_circuit, tmp_path_factory.mktemp("audit-chain"), trip)
    return Run(node, chain, breaker, verifier, run_windows, tiny_circuit, other_model_circuit, trip)


@pytest.fixture
def run(deployed: Run) -> Iterator[Run]:
    snapshot = deployed.chain.rpc("evm_snapshot", [])
    yield deployed
    assert deployed.chain.rpc("evm_revert", [snapshot]) is True


def _play(run: Run, rotate_after: int | None = None) -> None:
    """Submit the tiny windows (one skipped), then make sure of a trip and recover it by governance."""
    keys = [A2, A3]
    for i, bundle in enumerate(run.windows["tiny"]):
        if i == rotate_after:
            run.gov(run.breaker.functions.removeAttester(A2.address))
            run.gov(run.breaker.functions.addAttester(NEW_ATTESTER.address))
            keys = [A3, NEW_ATTESTER]
        if i != SKIPPED:
            run.submit(bundle, keys)
    if not breaker_state(run.chain, run.breaker)["tripped"]:
        run.gov(run.breaker.functions.trip(), GUARDIAN)
    run.gov(run.breaker.functions.recover())


def _discrepancies(report: AuditReport) -> list[tuple[str, int | None]]:
    return [(f.check, f.window_id) for f in report.discrepancies]


def test_clean_run_audits_clean_and_notes_the_gap(run: Run, run_cli, tiny_feed: Path, tmp_path: Path):
    _play(run)
    report = run.audit(data=(tiny_feed,))
    assert report.exit_code == 0, report.discrepancies
    reported = WINDOWS - 1
    for check in ("proofs", "calldata", "signatures", "window-id", "input-hash", "score-gap"):
        assert (report.checks[check].passed, report.checks[check].failed) == (reported, 0), check
    assert report.summary["trips"] >= 1 and report.summary["recoveries"] == 1
    skipped = run.windows["tiny"][SKIPPED].window_id
    assert [(f.check, f.window_id) for f in report.findings] == [("gaps", skipped)]
    assert report.summary["max_score_gap"] <= SCORE_TOLERANCE

    # Starting mid-history, the replay starts from the contract's state read at the block before.
    third = report.timeline["reports"][2]["block"]
    late = run.audit(from_block=third)
    assert late.exit_code == 0, late.discrepancies
    assert late.summary["reports"] == reported - 2 and late.checks["final-state"].passed == 1

    html = tmp_path / "audit.html"
    code, out, _ = run_cli("--root", run.tiny, "audit", "--rpc", run.node, "--breaker", run.breaker.address,
                           "--data", tiny_feed, "--html", html)
    assert code == 0, out
    assert "audit: CLEAN: 0 discrepancy(ies), 1 notice(s)" in out
    assert html.read_text().count("data:image/png;base64,") == 1


def test_a_reporter_that_hides_three_high_windows_is_flagged(run: Run, run_cli, tiny_feed: Path,
                                                              float_by_end: dict[int, float], tmp_path: Path):
    import json

    tiny = run.windows["tiny"]
    first, hidden, last = tiny[0], tiny[1:4], tiny[4]
    trip = 0.5  # the breaker's lowest threshold: the whole stretch scores clearly above it
    assert min(float_by_end[b.window_end_unix] for b in tiny) >= trip + 0.02
    # Deployed just before the first window ends: no earlier window is this breaker's to answer for.
    run.warp_to(first.window_end_unix - 30)
    chain, breaker, verifier = _deploy(run.node, run.tiny, tmp_path / "hiding", trip=trip)
    hiding = Run(run.node, chain, breaker, verifier, run.windows, run.tiny, run.other, trip)
    hiding.submit(first)
    hiding.submit(last)  # after the gap its streak starts again: on chain there was never a run
    assert breaker_state(chain, breaker)["tripped"] is False

    code, out, _ = run_cli("--root", run.tiny, "audit", "--rpc", run.node, "--breaker", breaker.address,
                           "--data", tiny_feed, "--json")
    assert code == 1
    report = json.loads(out)
    (finding,) = [f for f in report["findings"] if f["severity"] == "discrepancy"]
    assert finding["check"] == "suppression" and finding["window_id"] == hidden[1].window_id
    for b in hidden:
        assert f"{b.window_id} ({float_by_end[b.window_end_unix]:.3f})" in finding["message"]
    assert "3 unreported window(s)" in finding["message"] and "the chain did not trip" in finding["message"]
    tally = report["checks"]["suppression"]
    assert (tally["passed"], tally["failed"], tally["skipped"]) == (0, 3, 0)  # the breaker's windows: 3 unreported
    assert report["summary"]["suppressed"] == [b.window_id for b in hidden]


def test_an_honest_risk_mode_run_is_clean(run: Run, tiny_feed: Path, float_by_end: dict[int, float]):
    """Every window scoring within the margin of the trip threshold is reported, only calm ones are skipped."""
    margin = SCORE_TOLERANCE  # the tiny circuit's bound on |proven - float|
    tiny = run.windows["tiny"]
    first_log = run.chain.w3.eth.get_logs({"address": run.breaker.address, "fromBlock": 0, "toBlock": "latest"})[0]
    deployed_at = int(run.chain.w3.eth.get_block(first_log["blockNumber"])["timestamp"])
    calm_before = [s for end, s in float_by_end.items() if deployed_at <= end < tiny[0].window_end_unix]
    assert calm_before and max(calm_before) < run.trip - margin  # the breaker answers for these too
    reported = [b for b in tiny if float_by_end[b.window_end_unix] >= run.trip - margin]
    skipped = [b for b in tiny if b not in reported]
    assert skipped and reported[-3:] == tiny[-3:]
    for bundle in reported:
        run.submit(bundle)
    assert breaker_state(run.chain, run.breaker)["tripped"] is True

    report = run.audit(data=(tiny_feed,))
    assert report.exit_code == 0, report.discrepancies
    tally = report.checks["suppression"]
    assert (tally.passed, tally.failed) == (len(calm_before) + len(skipped), 0)
    assert report.summary["unreported_reportable"] > 0  # windows after the last report: not judged yet


def test_breaker_wired_to_another_models_verifier_is_found(run: Run, tmp_path: Path):
    chain, breaker, verifier = _deploy(run.node, run.other, tmp_path / "rogue", trip=0.9)
    rogue = Run(run.node, chain, breaker, verifier, run.windows, run.tiny, run.other, trip=0.9)
    for bundle in run.windows["other"]:
        rogue.submit(bundle)  # the chain accepts them: the verifier is the other model's
    report = rogue.audit()
    assert report.exit_code == 1
    (finding,) = report.discrepancies
    assert finding.check == "verifier-code" and verifier.lower() in finding.message.lower()
    assert "different model" in finding.message and f"{OTHER} report(s)" in finding.message
    assert report.checks["proofs"].skipped == OTHER and report.checks["signatures"].passed == OTHER


def test_archive_row_changed_after_the_fact_is_found(run: Run, tiny_feed: Path, tmp_path: Path):
    _play(run)
    last = run.windows["tiny"][-1]
    lines = tiny_feed.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    row = last.window_end_unix  # the last reported window's final row: no other reported window holds it
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(row, UTC)
    index = next(i for i, line in enumerate(lines[1:], 1)
                 if datetime.fromisoformat(line.split(",")[0].replace("Z", "+00:00")) == stamp)
    cells = lines[index].rstrip("\n").split(",")
    price = header.index("mid_price")
    cells[price] = f"{float(cells[price]) * 1.0002:.6f}"
    lines[index] = ",".join(cells) + "\n"
    edited = tmp_path / "archive.csv"
    edited.write_text("".join(lines))
    report = run.audit(data=(edited,))
    assert _discrepancies(report) == [("input-hash", last.window_id)]
    assert report.checks["input-hash"].passed == WINDOWS - 2


def test_attester_rotated_mid_run_is_followed_not_flagged(run: Run):
    _play(run, rotate_after=2)
    # The rotated-out key can no longer sign anything the chain accepts, so no report can be flagged for it:
    late = run.windows["other"][0]
    with pytest.raises(ContractRevert) as info:
        run.submit(late, [A2, A3])
    assert info.value.error == "NotAttester"
    report = run.audit()
    assert report.exit_code == 0, report.discrepancies
    assert report.checks["signatures"].passed == WINDOWS - 1
    notes = sorted((f.check, f.message.split()[1]) for f in report.findings if f.check != "gaps")
    assert notes == sorted([("attester-set", A2.address), ("attester-set", NEW_ATTESTER.address)])


def test_verifier_upgrade_through_the_timelock_is_followed(run: Run):
    for bundle in run.windows["tiny"][:3]:
        run.submit(bundle)
    new_verifier, manifest = verifier_contract(ArtifactLayout(run.other))
    deployed = run.chain.deploy(new_verifier, [], GOV)
    code = run.chain.codehash(deployed.address)
    run.gov(run.breaker.functions.proposeVerifier(deployed.address, manifest["instances"]["score_scale"],
                                                  int(manifest["cadence_seconds"]), code, ZERO_ADDRESS, 0, b"\0" * 32))
    run.warp_to(anvil.chain_time(run.node) + TIMELOCK + 1)
    run.gov(run.breaker.functions.executeVerifier())
    other = run.windows["other"]
    for bundle in other:
        run.submit(bundle)
    report = run.audit(artifacts=(run.tiny, run.other))
    assert report.exit_code == 0, report.discrepancies
    assert (report.checks["proofs"].passed, report.checks["proofs"].failed) == (3 + len(other), 0)
    assert report.checks["verifier-code"].passed == 3  # both models' verifiers and the first one's batch verifier
    (change,) = [f for f in report.findings if f.check == "verifier-change"]
    assert deployed.address in change.message
    gaps = [f for f in report.findings if f.check == "gaps"]
    assert [f.check for f in report.findings if f.check not in ("gaps", "verifier-change")] == []
    assert len(gaps) == 1  # the run's windows 4..5 were never reported

    # Without the new model's artifacts the same history is not auditable: exactly that is reported.
    partial = run.audit(artifacts=(run.tiny,))
    assert [f.check for f in partial.discrepancies] == ["verifier-code"]


def test_a_batch_verifier_set_again_with_another_models_verifier_is_found(run: Run):
    """The review's A1: every setting of a batch verifier is checked, not only the first of its address. Here
    governance upgrades to the other model but keeps the tiny model's batch verifier: its batches would carry the
    tiny model's scores under the other model."""
    run.submit(run.windows["tiny"][0])
    batch = run.chain.call(run.breaker.functions.batchVerifier(), "batchVerifier")
    k = int(run.chain.call(run.breaker.functions.batchWindows(), "batchWindows"))
    new_verifier, manifest = verifier_contract(ArtifactLayout(run.other))
    deployed = run.chain.deploy(new_verifier, [], GOV)
    code = run.chain.codehash(deployed.address)
    run.gov(run.breaker.functions.proposeVerifier(deployed.address, manifest["instances"]["score_scale"],
                                                  int(manifest["cadence_seconds"]), code, batch, k,
                                                  run.chain.codehash(batch)))
    run.warp_to(anvil.chain_time(run.node) + TIMELOCK + 1)
    run.gov(run.breaker.functions.executeVerifier())
    report = run.audit(artifacts=(run.tiny, run.other))
    (found,) = report.discrepancies
    assert found.check == "verifier-code" and "not of the model whose verifier" in found.message, found


def test_a_verifier_set_with_another_score_scale_than_its_model_is_found(run: Run):
    """The breaker cannot read a circuit's scale from its verifier: the auditor checks it against the manifest."""
    manifest_scale = int(run.chain.call(run.breaker.functions.scoreScale(), "scoreScale"))
    code = run.chain.codehash(run.verifier)
    run.gov(run.breaker.functions.proposeVerifier(run.verifier, manifest_scale + 2, 60, code, ZERO_ADDRESS, 0,
                                                  b"\0" * 32))
    run.warp_to(anvil.chain_time(run.node) + TIMELOCK + 1)
    run.gov(run.breaker.functions.executeVerifier())
    report = run.audit()
    assert report.exit_code == 1
    (finding,) = report.discrepancies
    assert finding.check == "model-settings"
    assert f"scoreScale {manifest_scale + 2} (the model's is {manifest_scale})" in finding.message
    assert (report.checks["model-settings"].passed, report.checks["model-settings"].failed) == (1, 1)


FORWARDER_SOURCE = Path(__file__).resolve().parents[1] / "contracts" / "Forwarder.sol"


@contextlib.contextmanager
def _node_without_tracer(node: str) -> Iterator[str]:
    """An RPC in front of ``node`` that answers ``debug_*`` as a node without the debug API does (geth's words)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = json.loads(body)
            if request["method"].startswith("debug_"):
                out = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": {
                    "code": -32601, "message": f"the method {request['method']} does not exist/is not available"}})
                data = out.encode()
            else:
                data = requests.post(node, data=body, headers={"Content-Type": "application/json"}, timeout=30).content
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_reports_forwarded_through_a_contract_are_decoded_from_the_trace_and_checked(run: Run):
    """A wallet, multicall or 7702 account may call ``submit``: the breaker accepts it, the auditor must check it."""
    from sentinel.chain.encoding import submit_args
    from sentinel.toolchain.solc import compile_files

    compiled = compile_files([FORWARDER_SOURCE], optimizer_runs=OPTIMIZER_RUNS)["Forwarder"]
    forwarder = run.chain.contract(run.chain.deploy(compiled, [], GOV).address, compiled.abi)
    tiny = run.windows["tiny"]

    def submit_data(bundle: ProofBundle) -> bytes:
        signed = sign_message(message_for(bundle), [A2, A3], run.chain.chain_id, run.breaker.address)
        return bytes.fromhex(run.breaker.encode_abi("submit", args=submit_args(bundle, signed, 2))[2:])

    def send(function: Any, last: ProofBundle) -> str:
        run.warp_to(last.window_end_unix + 30)
        receipt = run.chain.transact(function, GOV, "forwarding")
        return "0x" + bytes(receipt["transactionHash"]).hex()

    run.submit(tiny[0])  # direct, as the relay sends them
    txs = {tiny[1].window_id: send(forwarder.functions.forward(run.breaker.address, submit_data(tiny[1])), tiny[1])}
    # Two windows in one transaction, with a copy of the first between them that the breaker refuses.
    batch = [submit_data(tiny[2]), submit_data(tiny[2]), submit_data(tiny[3])]
    tx = send(forwarder.functions.forwardEach(run.breaker.address, batch, [False, True, False]), tiny[3])
    txs |= {tiny[2].window_id: tx, tiny[3].window_id: tx}
    # Forwarded twice: the breaker's submit is two calls deep.
    inner = bytes.fromhex(forwarder.encode_abi("forward", args=[run.breaker.address, submit_data(tiny[4])])[2:])
    txs[tiny[4].window_id] = send(forwarder.functions.forward(forwarder.address, inner), tiny[4])
    assert breaker_state(run.chain, run.breaker)["last_window_id"] == tiny[4].window_id

    report = run.audit()
    assert report.exit_code == 0, report.discrepancies
    assert report.findings == []
    assert report.summary["reports"] == WINDOWS and report.summary["forwarded_reports"] == len(txs)
    for check in ("calldata", "signatures", "window-id", "proofs"):
        assert (report.checks[check].passed, report.checks[check].failed, report.checks[check].skipped) == \
            (WINDOWS, 0, 0), check

    # A node without the debug API cannot show the forwarded calls: each such report is a discrepancy, never a pass.
    with _node_without_tracer(run.node) as url:
        blind = replace(run, node=url).audit()
    assert blind.exit_code == 1
    assert sorted(_discrepancies(blind)) == sorted(("calldata", w) for w in txs)
    for finding in blind.discrepancies:
        assert finding.window_id is not None and finding.tx == txs[finding.window_id]
        assert finding.tx in finding.message
        assert "another contract" in finding.message and "tracing node" in finding.message
    assert (blind.checks["proofs"].passed, blind.checks["proofs"].skipped) == (1, len(txs))
    assert blind.checks["signatures"].passed == 1


def test_a_batch_report_is_decoded_verified_once_and_checked_per_window(run: Run, tiny_feed: Path, tmp_path: Path):
    """Issue #20 item 4: a submitBatch's windows are each checked like a submit's (calldata, signatures, window
    id, input hash and score from the archived rows) and their one proof is verified with the batch circuit's
    vk; a batch verifier that is no published model's batch circuit is found."""
    for i, bundle in enumerate(run.windows["tiny"]):
        if i != SKIPPED:
            run.submit(bundle)
    (batch,) = run.windows["batch"]
    assert isinstance(batch, BatchBundle)
    run.warp_to(batch.windows[-1].window_end_unix + 30)
    signed = [sign_message(m, [A2, A3], run.chain.chain_id, run.breaker.address) for m in messages_for_batch(batch)]
    submit_batch_signed(run.chain, run.breaker, batch, signed, GOV, quorum=2)
    report = run.audit(data=(tiny_feed,))
    assert report.exit_code == 0, report.discrepancies
    reported = WINDOWS - 1 + batch.size
    for check in ("proofs", "calldata", "signatures", "window-id", "input-hash", "score-gap"):
        assert (report.checks[check].passed, report.checks[check].failed) == (reported, 0), check
    assert report.checks["verifier-code"].passed == 2  # the verifier and the batch verifier

    # Published without its batch circuit: the breaker's batch verifier matches nothing, its windows' proof
    # cannot be checked (and is not counted as checked).
    published = tmp_path / "published"
    (published / "circuits").mkdir(parents=True)
    for item in (run.tiny / "circuits").iterdir():
        if item.name != "manifest.json":
            (published / "circuits" / item.name).symlink_to(item)
    (published / "models").symlink_to(run.tiny / "models")
    manifest = json.loads((run.tiny / "circuits" / "manifest.json").read_text())
    (published / "circuits" / "manifest.json").write_text(json.dumps({**manifest, "batch": None}))
    bad = run.audit(artifacts=(published,))
    assert bad.exit_code == 1
    assert [f.check for f in bad.discrepancies] == ["verifier-code"], bad.discrepancies
    assert "matches no published model's batch circuit" in bad.discrepancies[0].message
    assert (bad.checks["proofs"].passed, bad.checks["proofs"].skipped) == (WINDOWS - 1, batch.size)
