"""A single-file HTML audit report: risk timeline (matplotlib PNG, base64-embedded), checks and findings."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from sentinel.artifacts import atomic_write_text
from sentinel.audit.findings import AuditReport
from sentinel.audit.report import CHECKS


def timeline_png(timeline: dict[str, Any]) -> bytes:
    """Proven scores against window end time, thresholds in force as steps, trip/recovery and verifier markers,
    and the float scores of unreported windows when the audit had the archived rows."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.pyplot as plt

    reports = timeline.get("reports", [])
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=100)
    if reports:
        # Times stay datetimes: matplotlib's date units convert them (and label the axis) at run time,
        # though its type hints know only floats.
        t: list[Any] = [datetime.fromtimestamp(r["window_end"], UTC) for r in reports]
        by_block = {r["block"]: datetime.fromtimestamp(r["window_end"], UTC) for r in reports}
        # A line only joins consecutive windows: drawn across unreported ones it would invent scores.
        xs: list[Any] = []
        ys: list[float] = []
        for i, r in enumerate(reports):
            if i and r["window_id"] - reports[i - 1]["window_id"] > 1:
                xs.append(t[i])
                ys.append(float("nan"))
            xs.append(t[i])
            ys.append(r["score"])
        ax.plot(xs, ys, ".-", color="#1f4e9c", lw=1, ms=4, label="proven risk score (gaps: windows not reported)")
        ax.step(t, [r["trip_threshold"] for r in reports], where="post", color="#c0392b", ls="--", lw=1,
                label="trip threshold")
        ax.step(t, [r["reset_threshold"] for r in reports], where="post", color="#27ae60", ls="--", lw=1,
                label="reset threshold")

        def when(marker: dict[str, Any]) -> Any:  # a datetime (see t)
            # A trip or recovery happens at a report (its window end) or, by hand, after the last one before it.
            earlier = [b for b in by_block if b <= marker["block"]]
            return by_block[max(earlier)] if earlier else t[0]

        for trip in timeline.get("trips", []):
            ax.axvline(when(trip), color="#c0392b", lw=1.5, alpha=0.6)
            ax.annotate("manual trip" if trip["manual"] else "trip", (when(trip), 1.02), color="#c0392b",
                        fontsize=8, rotation=90, va="bottom", ha="center", xycoords=("data", "axes fraction"))
        for rec in timeline.get("recoveries", []):
            ax.axvline(when(rec), color="#27ae60", lw=1.5, alpha=0.6)
            ax.annotate("recovery", (when(rec), 1.02), color="#27ae60", fontsize=8, rotation=90, va="bottom",
                        ha="center", xycoords=("data", "axes fraction"))
        for change in timeline.get("verifier_changes", []):
            if not change["initial"]:
                ax.axvline(when(change), color="#8e44ad", lw=1, ls=":")
    unreported = timeline.get("unreported", [])
    for flagged, style, color, label in ((False, ".", "#9aa5b1", "unreported window (float model)"),
                                         (True, "x", "#c0392b", "unreported window in a run that trips (suppression)")):
        picked = [u for u in unreported if u["flagged"] is flagged]
        if picked:
            when_ended: list[Any] = [datetime.fromtimestamp(u["window_end"], UTC) for u in picked]
            ax.plot(when_ended, [u["score"] for u in picked], style, color=color, ms=3 if not flagged else 6,
                    label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("risk")
    ax.set_xlabel("window end (UTC)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML document (no external resources)."""
    e = html.escape
    s = report.summary
    png = base64.b64encode(timeline_png(report.timeline)).decode()
    verdict = "CLEAN" if report.exit_code == 0 else "DISCREPANCIES FOUND"
    color = "#27ae60" if report.exit_code == 0 else "#c0392b"
    rows = "".join(
        f"<tr><td>{e(n)}</td><td>{t.passed}</td><td class='{'bad' if t.failed else ''}'>{t.failed}</td>"
        f"<td>{t.skipped}</td><td>{e(t.note or CHECKS.get(n, ''))}</td></tr>" for n, t in report.checks.items())
    blocks = f"blocks {s.get('from_block')}..{s.get('to_block')}"
    windows = f"windows {s.get('first_window_id')}..{s.get('last_window_id')}"
    check_head = "<tr><th>check</th><th>passed</th><th>failed</th><th>skipped</th><th>what</th></tr>"
    finding_head = "<tr><th>severity</th><th>check</th><th>window</th><th>block</th><th>tx</th><th>finding</th></tr>"
    findings = "".join(
        f"<tr class='{f.severity}'><td>{e(f.severity)}</td><td>{e(f.check)}</td><td>{f.window_id or ''}</td>"
        f"<td>{f.block or ''}</td><td><code>{e(f.tx or '')}</code></td><td>{e(f.message)}</td></tr>"
        for f in report.findings) or "<tr><td colspan=6>none</td></tr>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sentinel audit of {e(str(s.get('breaker')))}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}}.bad{{color:#c0392b;font-weight:bold}}
tr.discrepancy{{background:#fdecea}}tr.notice{{background:#f4f6f8}}h1 span{{color:{color}}}</style></head><body>
<h1>Sentinel audit: <span>{verdict}</span></h1>
<p>Breaker <code>{e(str(s.get('breaker')))}</code> on chain {s.get('chain_id')}, {blocks};
{s.get('reports', 0)} reports ({windows}), {s.get('trips', 0)} trips,
{s.get('recoveries', 0)} recoveries; tripped now: {s.get('tripped_now')}.</p>
<img alt="risk timeline" src="data:image/png;base64,{png}">
<h2>Checks</h2><table>{check_head}{rows}</table>
<h2>Findings</h2><table>{finding_head}{findings}</table>
</body></html>
"""


def write_html(report: AuditReport, path: Path) -> Path:
    """Write the HTML report atomically; returns its path."""
    atomic_write_text(Path(path), render_html(report))
    return Path(path)
