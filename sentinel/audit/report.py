"""The audit report for people (plain-text tables) and for machines (JSON) (pure)."""

from __future__ import annotations

from sentinel.audit.findings import DISCREPANCY, AuditReport

#: Check names in the order a reader follows the trust chain, with a one-line description.
CHECKS = {
    "artifact-hashes": "manifest hash chain: ONNX, settings, compiled circuit, vk, verifier, SRS",
    "verifier-render": "verifier re-rendered from the vk (EZKL) and compiled (npm solc) = published one",
    "breaker-code": "deployed breaker = the published source (immutables masked) with this chain's domain",
    "verifier-code": "each verifier the breaker used = one re-rendered from an artifact set (eth_getCode)",
    "model-settings": "score scale and cadence the breaker was given with each verifier = that model's manifest",
    "state-machine": "breaker events replayed: streaks, trips, recoveries, params, attesters, timelock",
    "final-state": "replayed state = the contract's state now",
    "calldata": "submit calldata (traced if forwarded) decoded; equals its Report event; score matches the event's",
    "signatures": "EIP-712 signatures: distinct registered attesters at that block, ascending, >= quorum",
    "window-id": "window id = the id the window end and the model's cadence give",
    "proofs": "proof verifies off-chain (EZKL) with the vk of the verifier active at that block",
    "input-hash": "Poseidon hash of the archived rows = proven input hash (--data)",
    "score-gap": "float model on the archived rows vs proven score within tolerance (--data)",
    "suppression": "unreported windows scored by the float model: none completes a run that trips the breaker (--data)",
    "gaps": "window ids never reported (notices)",
}


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def table(header: list[str], rows: list[list[str]]) -> str:
    """A left-aligned plain-text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row([str(c) for c in r], widths) for r in rows]
    return "\n".join(lines)


def render_text(report: AuditReport, max_findings: int = 200) -> str:
    """The human report: summary, checks table, findings table, verdict."""
    s = report.summary
    out = [
        (f"audit of breaker {s.get('breaker')} on chain {s.get('chain_id')} ({s.get('rpc_url')}), "
         f"blocks {s.get('from_block')}..{s.get('to_block')}"),
        (f"{s.get('reports', 0)} report(s), windows {s.get('first_window_id')}..{s.get('last_window_id')}, "
         f"{s.get('trips', 0)} trip(s), {s.get('recoveries', 0)} recovery(ies), tripped now: {s.get('tripped_now')}"),
        "",
    ]
    rows = []
    names = [n for n in CHECKS if n in report.checks] + [n for n in report.checks if n not in CHECKS]
    for name in names:
        t = report.checks[name]
        status = "FAIL" if t.failed else ("skip" if not t.passed and t.skipped else "ok")
        if name == "gaps":
            status = "notice" if any(f.check == "gaps" for f in report.findings) else "ok"
        rows.append([name, status, str(t.passed), str(t.failed), str(t.skipped), t.note or CHECKS.get(name, "")])
    out.append(table(["check", "status", "passed", "failed", "skipped", "what"], rows))
    if report.findings:
        out.append("")
        shown = sorted(report.findings, key=lambda f: (f.severity != DISCREPANCY, f.block or 0))[:max_findings]
        out.append(table(["severity", "check", "window", "block", "tx", "finding"],
                         [[f.severity, f.check, str(f.window_id or "-"), str(f.block or "-"),
                           (f.tx[:10] + "..") if f.tx else "-", f.message] for f in shown]))
        if len(report.findings) > max_findings:
            out.append(f"... and {len(report.findings) - max_findings} more (see --json)")
    counts = report.counts()
    out.append("")
    verdict = "CLEAN" if report.exit_code == 0 else "DISCREPANCIES FOUND"
    out.append(f"audit: {verdict}: {counts[DISCREPANCY]} discrepancy(ies), {counts['notice']} notice(s); "
               f"{report.seconds.get('total', 0):.1f} s")
    return "\n".join(out)
