"""``sentinel audit``: verify everything a breaker did, from the chain and the published artifacts only.

Order of work: load and hash-check every artifact set and re-render its
verifier; compile the published breaker source (its ABI decodes the logs and
calldata; its code, immutables masked, must be what is deployed); read every
event of the breaker; replay its state machine from the events and compare
with the contract's state; match each verifier the breaker ever used with an
artifact set by runtime code; for every report decode the ``submit`` calldata
(the transaction's input, or for a report forwarded through another contract
the breaker's ``submit`` call found in the transaction's call trace) and
check it against the event, the signatures against the attester set and
quorum *at that block*, the window id against its end time, and the proof
off-chain with the vk of the verifier active at that block; with ``--data``,
recompute input hashes and float scores from the archived rows, and score
the windows nobody reported to find runs that would have tripped the breaker
(:mod:`sentinel.audit.suppression`). Nothing the operator publishes about
the run (deployments.json, proof bundles, attestation files, relay state) is
read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.audit import checks
from sentinel.audit.artifacts import (
    ArtifactSet,
    compile_breaker,
    immutable_values,
    load_set,
    mask_immutables,
    render_verifier,
)
from sentinel.audit.calldata import CalldataError, SubmitCall, SubmitLocator
from sentinel.audit.findings import AuditReport, Finding, discrepancy, notice
from sentinel.audit.replay import ZERO, ChainEvent, ReplayResult, ReportContext, Snapshot, compare_final, replay

if TYPE_CHECKING:
    from sentinel.audit.rows import Archive

#: progress(step, detail)
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class AuditRequest:
    """What to audit and how."""

    rpc_url: str
    breaker: str
    artifacts: tuple[Path, ...]
    breaker_source: Path
    breaker_optimizer_runs: int
    data: tuple[Path, ...] = ()
    from_block: int = 0
    to_block: int | None = None
    workers: int = 0
    parallel_min_reports: int = 32
    log_chunk_blocks: int = 5000
    score_tolerance: float = 0.005


#: Re-rendering a verifier and compiling the breaker take seconds; one process (tests, bench) audits many runs.
_RENDER_CACHE: dict[tuple[str, ...], tuple[bytes | None, list[Finding]]] = {}
_BREAKER_CACHE: dict[tuple[str, int], Any] = {}


def _load_sets(paths: tuple[Path, ...], say: Progress) -> list[ArtifactSet]:
    from sentinel.artifacts import sha256_file

    sets = []
    for path in paths:
        art = load_set(path)
        for one in (art, art.batch):
            if one is None:
                continue
            key = (sha256_file(one.vk), sha256_file(one.settings), sha256_file(one.srs), str(one.root))
            if key not in _RENDER_CACHE:
                say("artifacts", f"re-rendering the verifier from {one.vk} (EZKL) and compiling it (npm solc)")
                findings = render_verifier(one)
                _RENDER_CACHE[key] = (one.runtime, findings)
            one.runtime, findings = _RENDER_CACHE[key]
            one.findings.extend(findings)
        sets.append(art)
    return sets


def run_audit(req: AuditRequest, progress: Progress | None = None) -> AuditReport:
    """Audit the breaker in ``req``; raises AuditError (exit 2) when the audit cannot run."""
    from sentinel.artifacts import sha256_file
    from sentinel.audit.chainread import BreakerReader
    from sentinel.chain import eip712

    say = progress or (lambda step, detail: None)
    report = AuditReport()
    t0 = time.perf_counter()

    # 1. published artifacts
    sets = _load_sets(req.artifacts, say)
    hashes, render = report.tally("artifact-hashes"), report.tally("verifier-render")
    for art in [one for a in sets for one in (a, a.batch) if one is not None]:
        hashes.record(ok=not any(f.check == "artifact-hashes" for f in art.findings))
        render.record(ok=not any(f.check == "verifier-render" for f in art.findings))
        report.add(*art.findings)
    bkey = (sha256_file(req.breaker_source), req.breaker_optimizer_runs)
    if bkey not in _BREAKER_CACHE:
        say("artifacts", f"compiling the published breaker source {req.breaker_source}")
        _BREAKER_CACHE[bkey] = compile_breaker(req.breaker_source, req.breaker_optimizer_runs)
    reference = _BREAKER_CACHE[bkey]
    report.seconds["artifacts"] = time.perf_counter() - t0

    # 2. the chain
    t = time.perf_counter()
    reader = BreakerReader(req.rpc_url, req.breaker, reference.abi)
    breaker, chain_id = reader.address, reader.chain_id
    head = reader.head() if req.to_block is None else req.to_block
    say("chain", f"breaker {breaker} on chain {chain_id}: scanning blocks {req.from_block}..{head}")
    code = reader.code(breaker, head)
    tally = report.tally("breaker-code")
    same_code = mask_immutables(code, reference.immutables) == reference.runtime
    expected_immutables = {chain_id, int.from_bytes(eip712.domain_separator(chain_id, breaker), "big")}
    tally.record(ok=same_code and expected_immutables <= immutable_values(code, reference.immutables))
    if not same_code:
        report.add(discrepancy("breaker-code", f"deployed code at {breaker} is not the published "
                                               f"{req.breaker_source.name} (compiled with {reference.compiler})"))
    elif not expected_immutables <= immutable_values(code, reference.immutables):
        report.add(discrepancy("breaker-code", "breaker immutables do not hold this chain's id and EIP-712 domain"))

    events = reader.events(req.from_block, head, req.log_chunk_blocks)
    start = Snapshot()
    if req.from_block > 0 and reader.code(breaker, req.from_block - 1):
        start = reader.snapshot(req.from_block - 1)  # the audit starts mid-history: take the state there
    report.seconds["events"] = time.perf_counter() - t

    # 3. state machine
    t = time.perf_counter()
    result = replay(events, start)
    onchain = reader.snapshot(head)
    sm = report.tally("state-machine")
    sm.failed = len(result.findings)
    sm.passed = max(0, result.events_checked - sm.failed)
    report.add(*result.findings)
    final = compare_final(result.final, onchain)
    report.tally("final-state").record(ok=not final)
    report.add(*final)

    # 4. verifiers the breaker used: each must be a published model's
    by_runtime = {art.runtime: art for art in sets}
    active_from: dict[str, int] = {}
    if start.verifier != ZERO:
        active_from[start.verifier.lower()] = req.from_block
    for e in result.verifier_changes:
        active_from.setdefault(e.args["verifier"].lower(), e.block)
    verifier_set: dict[str, ArtifactSet | None] = {}
    vtally = report.tally("verifier-code")
    for address, block in active_from.items():
        deployed = reader.code(address, block)
        matched = by_runtime.get(deployed)
        verifier_set[address] = matched
        vtally.record(ok=matched is not None)
        if matched is None:
            accepted = sum(1 for c in result.reports if c.verifier.lower() == address)
            report.add(discrepancy(
                "verifier-code", f"verifier {address} (active from block {block}) matches no artifact set: a verifier "
                                 f"for a different model; its {accepted} report(s) cannot be checked against a "
                                 "published model", block=block))
    batch_set = _batch_verifiers(report, reader, req, start, result, sets, verifier_set)
    # The breaker decodes scores at the scale and derives window ids at the cadence it was given with the
    # verifier; neither can be read from the verifier's code, so each must be the matched model's.
    stally = report.tally("model-settings")
    for e in result.verifier_changes:
        model = verifier_set.get(e.args["verifier"].lower())
        if model is None:
            continue
        wanted = {"scoreScale": int(model.manifest["instances"]["score_scale"]),
                  "cadence": int(float(model.manifest["cadence_seconds"]))}
        wrong = [f"{k} {e.args[k]} (the model's is {v})" for k, v in wanted.items() if int(e.args[k]) != v]
        stally.record(ok=not wrong)
        if wrong:
            report.add(discrepancy("model-settings", f"verifier {e.args['verifier']} was set with "
                                   + " and ".join(wrong) + f" (model {model.root})", block=e.block, tx=e.tx))
    for e in result.verifier_changes:
        if e.args["previous"] != ZERO:
            upgraded = verifier_set.get(e.args["verifier"].lower())
            report.add(notice("verifier-change", f"verifier upgraded through the timelock to {e.args['verifier']}"
                                                 + (f" (model {upgraded.root})" if upgraded is not None else "")
                                                 + "; later reports are checked against it", block=e.block, tx=e.tx))
    constructor_tx = next((e.tx for e in result.verifier_changes if e.args["previous"] == ZERO), None)
    for e in events:
        if e.name in ("AttesterAdded", "AttesterRemoved") and e.tx != constructor_tx:
            verb = "added" if e.name == "AttesterAdded" else "removed"
            report.add(notice("attester-set", f"attester {e.args['attester']} {verb} by governance; signatures are "
                                              "checked against the set at each report's block", block=e.block, tx=e.tx))
    report.seconds["replay"] = time.perf_counter() - t

    # 5. every report: calldata, signatures, window id, and its proof
    t = time.perf_counter()
    from sentinel.audit.proofs import ProofTask, resolve_workers, verify_all

    contexts = result.reports
    calls: dict[int, SubmitCall] = {}
    tasks: list[tuple[ReportContext, ProofTask]] = []
    ctally, stally, wtally = report.tally("calldata"), report.tally("signatures"), report.tally("window-id")
    locator, forwarded = SubmitLocator(reader, breaker), 0
    for i, ctx in enumerate(contexts):
        if i % 100 == 0 and i:
            say("reports", f"{i}/{len(contexts)} decoded")
        try:
            located = locator.locate(ctx.event)
        except CalldataError as exc:
            ctally.record(ok=False)
            report.add(discrepancy("calldata", str(exc),
                                   window_id=int(ctx.event.args["windowId"]), block=ctx.event.block, tx=ctx.event.tx))
            continue
        forwarded += located.via is not None
        call = calls[i] = located.call
        found = checks.check_call(ctx, call, located.to, breaker)
        ctally.record(ok=not found)
        report.add(*found)
        found = checks.check_signatures(ctx, call, chain_id, breaker)
        stally.record(ok=not found)
        report.add(*found)
        active = verifier_set.get(ctx.verifier.lower())
        if active is None:
            wtally.skipped += 1
            continue
        found = checks.check_window_id(ctx.event, active.cadence)
        wtally.record(ok=not found)
        report.add(*found)
        proving = active if call.index is None else batch_set.get(ctx.batch_verifier.lower())
        if call.index is not None and proving is not None and proving is not active.batch:
            # each report, not only each setting: the batch circuit must be the model in force's
            report.add(discrepancy("verifier-code", f"a batch report proven by the batch verifier "
                                                    f"{ctx.batch_verifier}, which is not the batch circuit of the "
                                                    f"model in force ({active.root})",
                                   window_id=int(ctx.event.args["windowId"]), block=ctx.event.block, tx=ctx.event.tx))
            proving = None
        if proving is not None:
            tasks.append((ctx, ProofTask(call.proof, call.instances, proving.settings, proving.vk, proving.srs)))
    if forwarded:
        ctally.note = (f"{forwarded} report(s) forwarded through another contract: submit calls taken from the "
                       "transaction trace")
    report.seconds["calldata"] = time.perf_counter() - t

    t = time.perf_counter()
    workers = resolve_workers(req.workers)
    if len(tasks) < req.parallel_min_reports:
        workers = 1
    processes = f"{workers} process{'es' if workers > 1 else ''}"
    # the windows of one submitBatch share their proof: it is verified once
    unique = list(dict.fromkeys(task for _, task in tasks))
    say("proofs", f"verifying {len(unique)} proof(s) of {len(tasks)} report(s) off-chain with EZKL ({processes})")
    verdict = dict(zip(unique, verify_all(unique, workers), strict=True))
    ok = [verdict[task] for _, task in tasks]
    ptally = report.tally("proofs")
    ptally.skipped = len(contexts) - len(tasks)
    for (ctx, _), good in zip(tasks, ok, strict=True):
        ptally.record(ok=good)
        if not good:
            report.add(discrepancy("proofs", "EZKL rejects the proof with the vk of the verifier active at this block",
                                   window_id=int(ctx.event.args["windowId"]), block=ctx.event.block, tx=ctx.event.tx))
    report.seconds["proofs"] = time.perf_counter() - t

    # 6. archived rows: reported windows recomputed, unreported ones scored for the suppression check
    gap_stats: dict[str, Any] = {}
    unreported: list[dict[str, Any]] = []
    if req.data:
        from sentinel.audit.rows import load_archives

        t = time.perf_counter()
        archives = load_archives(list(req.data))
        gap_stats = _check_rows(req, report, archives, contexts, calls, verifier_set, say)
        report.seconds["data"] = time.perf_counter() - t
        t = time.perf_counter()
        # The breaker answers for windows from its deployment (or the start of the audit), and for any older
        # window it was given: everything after a reported window was reportable.
        since = events[0].timestamp if events and req.from_block == 0 else reader.timestamp(req.from_block)
        stats, unreported = _check_suppression(report, archives, result, start, verifier_set, since,
                                               reader.timestamp(head), say)
        gap_stats |= stats
        report.seconds["suppression"] = time.perf_counter() - t

    # 7. windows nobody reported
    ids = [int(c.event.args["windowId"]) for c in contexts]
    gaps = checks.gap_findings(ids)
    report.tally("gaps").note = f"{checks.missing_windows(ids)} window id(s) never reported"
    report.add(*gaps)

    report.summary = {
        "rpc_url": req.rpc_url, "chain_id": chain_id, "breaker": breaker, "from_block": req.from_block,
        "to_block": head, "events": len(events), "reports": len(contexts),
        "first_window_id": min(ids) if ids else None, "last_window_id": max(ids) if ids else None,
        "missing_windows": checks.missing_windows(ids), "trips": len(result.trips),
        "recoveries": len(result.recoveries), "forwarded_reports": forwarded,
        "verifiers": {a: (str(s.root) if s else None) for a, s in verifier_set.items()},
        "artifact_sets": [s.summary() for s in sets], "tripped_now": onchain.state.tripped,
        "proof_workers": workers, "data": [str(p) for p in req.data], **gap_stats,
    }
    report.timeline = _timeline(result, contexts, calls) | {"unreported": unreported}
    report.seconds["total"] = time.perf_counter() - t0
    return report


def _batch_verifiers(report: AuditReport, reader: Any, req: AuditRequest, start: Snapshot, result: Any,
                     sets: list[ArtifactSet], verifier_set: dict[str, ArtifactSet | None]
                     ) -> dict[str, ArtifactSet | None]:
    """The batch circuit behind each batch verifier the breaker used (None: no published model's). Every setting of
    one (construction and each executed change) must be the batch circuit of a published model, of the model whose
    verifier was set with it (they change together), for as many windows as the breaker was told."""
    by_runtime = {art.batch.runtime: art for art in sets if art.batch is not None}
    found: dict[str, ArtifactSet | None] = {}
    tally = report.tally("verifier-code")
    singles = {e.tx: e.args["verifier"].lower() for e in result.verifier_changes}
    settings: list[tuple[str, int, ChainEvent | None]] = []
    if start.batch_verifier != ZERO:
        settings.append((start.batch_verifier.lower(), req.from_block, None))
    settings += [(e.args["verifier"].lower(), e.block, e) for e in result.batch_verifier_changes
                 if e.args["verifier"] != ZERO]
    for address, block, event in settings:
        if address not in found:
            model = by_runtime.get(reader.code(address, block))
            found[address] = model.batch if model is not None else None
        batch = found[address]
        model = next((art for art in sets if art.batch is not None and art.batch is batch), None)
        problem = None
        if batch is None:
            problem = (f"batch verifier {address} (active from block {block}) matches no published model's batch "
                       "circuit: its reports cannot be checked")
        elif event is not None and int(event.args["windows"]) != batch.windows_per_proof:
            problem = (f"batch verifier {address} was set for batches of {event.args['windows']}; its circuit "
                       f"proves {batch.windows_per_proof} windows")
        elif event is not None and event.tx in singles and verifier_set.get(singles[event.tx]) is not model:
            problem = (f"batch verifier {address} is the batch circuit of {model.root if model else '?'}, not of the "
                       f"model whose verifier {singles[event.tx]} was set with it")
        tally.record(ok=problem is None)
        if problem is not None:
            report.add(discrepancy("verifier-code", problem, block=block, tx=event.tx if event else None))
    return found


def _check_rows(req: AuditRequest, report: AuditReport, archives: list[Archive], contexts: list[ReportContext],
                calls: dict[int, SubmitCall], verifier_set: dict[str, ArtifactSet | None],
                say: Progress) -> dict[str, Any]:
    import numpy as np

    from sentinel.audit.rows import float_scores, locate, raw_window
    from sentinel.zk.instances import fixed_to_float
    from sentinel.zk.witness_check import circuit_input_hash

    htally, gtally = report.tally("input-hash"), report.tally("score-gap")
    per_set: dict[str, list[tuple[ReportContext, np.ndarray, float]]] = {}
    say("data", f"recomputing input hashes and float scores from {len(archives)} archived file(s)")
    for i, ctx in enumerate(contexts):
        art = verifier_set.get(ctx.verifier.lower())
        call = calls.get(i)
        e = ctx.event
        if art is None or call is None:
            htally.skipped += 1
            gtally.skipped += 1
            continue
        where = locate(archives, int(e.args["windowEnd"]), art.window)
        if where is None:
            htally.skipped += 1
            gtally.skipped += 1
            report.add(notice("input-hash", f"window ending {int(e.args['windowEnd'])} is not in the archived rows",
                              window_id=int(e.args["windowId"]), block=e.block, tx=e.tx))
            continue
        archive, row = where
        raw = raw_window(archive, row, art.window)
        good = circuit_input_hash(art.compiled, raw) == int(e.args["inputHash"])
        htally.record(ok=good)
        if not good:
            report.add(discrepancy("input-hash", f"Poseidon hash of rows {row - art.window + 2}..{row + 1} of "
                                                 f"{archive.path.name} differs from the proven input hash",
                                   window_id=int(e.args["windowId"]), block=e.block, tx=e.tx))
        if len(call.instances) != call.expected_instances:
            gtally.skipped += 1  # malformed calldata: a calldata finding already
            continue
        proven = fixed_to_float(call.score_instance, int(art.instances["score_scale"]))
        per_set.setdefault(str(art.root), []).append((ctx, raw, proven))
    worst = 0.0
    by_root = {str(s.root): s for s in verifier_set.values() if s is not None}
    for root, items in per_set.items():
        scores = float_scores(by_root[root].onnx, np.stack([raw for _, raw, _ in items]))
        for (ctx, _, proven), flt in zip(items, scores, strict=True):
            gap = abs(proven - float(flt))
            worst = max(worst, gap)
            gtally.record(ok=gap <= req.score_tolerance)
            if gap > req.score_tolerance:
                e = ctx.event
                report.add(discrepancy("score-gap", f"proven score {proven:.4f} vs float model {flt:.4f} from the "
                                                    f"archived rows: gap {gap:.4f} > {req.score_tolerance}",
                                       window_id=int(e.args["windowId"]), block=e.block, tx=e.tx))
    gtally.note = f"max |proven - float| {worst:.5f} (tolerance {req.score_tolerance})"
    return {"max_score_gap": worst, "score_tolerance": req.score_tolerance}


def _check_suppression(report: AuditReport, archives: list[Archive], result: ReplayResult, start: Snapshot,
                       verifier_set: dict[str, ArtifactSet | None], since: int, head_time: int,
                       say: Progress) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every archived window nobody reported with the float model of the verifier active when it ended,
    and run the breaker's rule over all windows (:mod:`sentinel.audit.suppression`).

    A window after the last report that could still be reported at the head (its end + ``maxAge`` not yet
    passed) is not judged: the relay may be proving it. Returns summary figures and the scored windows
    (for the timeline).
    """
    import numpy as np

    from sentinel.audit.rows import float_scores, window_ends, windows_at
    from sentinel.audit.suppression import CHECK, Unreported, check_suppression
    from sentinel.data.windows import window_id

    reported = {int(c.event.args["windowId"]) for c in result.reports}
    reported_ends = [int(c.event.args["windowEnd"]) for c in result.reports]
    since = min([since, *reported_ends])
    last_end = max(reported_ends, default=None)
    max_age = result.final.params.max_age
    # (from, cadence, model): the first verifier answers from the start, each later one from its change.
    periods: list[tuple[float, int, ArtifactSet | None]] = []
    if start.verifier != ZERO:
        periods.append((-math.inf, start.cadence, verifier_set.get(start.verifier.lower())))
    for e in result.verifier_changes:
        periods.append((e.timestamp if periods else -math.inf, int(e.args["cadence"]),
                        verifier_set.get(e.args["verifier"].lower())))
    chosen: dict[int, tuple[ArtifactSet, int, int, int]] = {}  # id -> model, archive index, end, end row
    unscored: set[int] = set()
    waiting: set[int] = set()
    for k, (begin, cadence, art) in enumerate(periods):
        until = periods[k + 1][0] if k + 1 < len(periods) else math.inf
        for a, archive in enumerate(archives):
            for end, row in window_ends(archive, art.window if art else 1, max(since, begin), until):
                wid = window_id(end, art.cadence if art else cadence)
                if wid in reported:
                    continue
                if not ((last_end is not None and end < last_end) or end + max_age < head_time):
                    waiting.add(wid)
                elif art is None:
                    unscored.add(wid)
                else:
                    chosen[wid] = (art, a, end, row)  # rows run in time order: the newest row of an id ends it
    groups: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    models = {str(art.root): art for art, _, _, _ in chosen.values()}
    for wid, (art, a, end, row) in sorted(chosen.items()):
        groups.setdefault((str(art.root), a), []).append((wid, end, row))
    say("data", f"scoring {len(chosen)} unreported window(s) with the float model (suppression check)")
    windows: list[Unreported] = []
    for root, model in models.items():
        parts = [(items, windows_at(archives[a], [row for _, _, row in items], model.window))
                 for (r, a), items in groups.items() if r == root]
        scores = float_scores(model.onnx, np.concatenate([x for _, x in parts]))
        flat = [item for items, _ in parts for item in items]
        windows += [Unreported(wid, end, float(score)) for (wid, end, _), score in zip(flat, scores, strict=True)]
    found = check_suppression(start, result.history, windows)
    report.add(*found.findings)
    tally = report.tally(CHECK)
    tally.failed = len(found.flagged)
    tally.passed = len(windows) - tally.failed
    tally.skipped = len(unscored)
    top = max((w.score for w in windows), default=None)
    tally.note = (f"{len(windows)} unreported window(s) scored (float model"
                  + (f", max {top:.3f}" if top is not None else "") + f"), {tally.failed} in runs that trip; "
                  f"{len(waiting)} after the last report still reportable at the head, not judged")
    stats = {"unreported_scored": len(windows), "suppressed": sorted(found.flagged),
             "unreported_reportable": len(waiting), "unreported_unscored": len(unscored)}
    timeline = [{"window_id": w.window_id, "window_end": w.window_end, "score": w.score,
                 "flagged": w.window_id in found.flagged} for w in sorted(windows, key=lambda w: w.window_end)]
    return stats, timeline


def _timeline(result: Any, contexts: list[ReportContext], calls: dict[int, SubmitCall]) -> dict[str, Any]:
    """What the HTML report plots: scores over time, thresholds in force, trips, recoveries, verifier changes."""
    wad = 10**18
    return {
        "reports": [{"window_id": int(c.event.args["windowId"]), "window_end": int(c.event.args["windowEnd"]),
                     "block": c.event.block, "timestamp": c.event.timestamp, "score": int(c.event.args["score"]) / wad,
                     "tripped": bool(c.event.args["tripped"]), "trip_threshold": c.params.trip_threshold / wad,
                     "reset_threshold": c.params.reset_threshold / wad, "tx": c.event.tx} for c in contexts],
        "trips": [{"block": e.block, "timestamp": e.timestamp, "window_id": int(e.args["windowId"]),
                   "manual": bool(e.args["byGuardian"]), "tx": e.tx} for e in result.trips],
        "recoveries": [{"block": e.block, "timestamp": e.timestamp, "window_id": int(e.args["windowId"]),
                        "governance": bool(e.args["byGovernance"]), "tx": e.tx} for e in result.recoveries],
        "verifier_changes": [{"block": e.block, "timestamp": e.timestamp, "verifier": e.args["verifier"],
                              "initial": e.args["previous"] == ZERO} for e in result.verifier_changes],
    }
