"""out/report.html: one self-contained page (inline CSS and SVG, no script, no external resource).

Every value from the evidence goes through html.escape (``e``) before it is placed in the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from tasks.report import svg
from tasks.report.model import Report, short

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#202124;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dadce0}
table{border-collapse:collapse;width:100%;font-size:12px;margin:6px 0}
th,td{border:1px solid #dadce0;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f4} code,.digest{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px}
.pass{color:#137333;font-weight:600} .fail,.error,.blocks{color:#c5221f;font-weight:600}
.skipped{color:#b06000;font-weight:600} .muted{color:#5f6368}
dl.run{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}
dl.run dt{font-weight:600} .figures{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.scroll{overflow-x:auto} svg text{font-family:inherit;fill:#202124}
@media print{body{margin:0;max-width:none} h2{break-after:avoid} table,svg{break-inside:avoid}
.scroll{overflow:visible}}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """``rows`` cells are HTML already escaped by the caller."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _verdict(verdict: str) -> str:
    return f'<span class="{e(verdict)}">{e(verdict)}</span>'


def _stages(report: Report) -> str:
    rows = []
    for s in report.stages:
        verdict = _verdict(s.verdict) + (' <span class="muted">(up to date)</span>' if s.up_to_date else "")
        rows.append(
            [
                e(s.name),
                verdict,
                f'<span data-duration="{e(s.name)}">{s.duration_s:.1f}s</span>',
                "<br>".join(f"{e(t)} {e(v)}" for t, v in s.tools.items()),
                "<br>".join(e(n) for n in s.notes),
            ]
        )
    return _table(("stage", "verdict", "duration", "tools", "reason / opt-outs"), rows, "stages")


def _sast(report: Report) -> str:
    c = report.sast_counts
    if not c:
        return "<p>SAST did not run.</p>"
    head = (
        f'<p>Gate threshold <b>{e(c["threshold"])}</b>: <span class="blocks" id="sast-blocking">'
        f'{e(c["blocking"])}</span> blocking, <span id="sast-waived">{e(c["waived"])}</span> waived, '
        f'<span id="sast-below">{e(c["below_threshold"])}</span> below the threshold (counted, not listed).</p>'
    )
    rows = [
        [e(f["rule"]), f"<code>{e(f['location'])}</code>", e(f["severity"]), e(f["tool"]), e(f["decision"])]
        for f in report.sast
    ]
    return head + (_table(("rule", "file:line", "severity", "tool", "decision"), rows, "sast") if rows else "")


def _vulns(report: Report) -> str:
    if not report.severity_counts:
        return "<p>The scan did not run.</p>"
    rows = [
        [
            e(v["id"]),
            f"<code>{e(v['package'])}</code>",
            e(v["severity"]),
            e(v["fix"]),
            e(v["vex"]),
            f'<span class="{"blocks" if v["decision"] == "blocks" else ""}">{e(v["decision"])}</span>',
        ]
        for v in report.vulns
    ]
    if not rows:
        return '<p id="vulns-none">No vulnerability matched the image SBOM (see the scan stage for the DB used).</p>'
    return _table(("vulnerability", "package", "severity", "fix", "VEX status", "gate decision"), rows, "vulns")


def _compliance(report: Report) -> str:
    """Every failing rule is here: required ones that did not pass, unwaived ones (blocking), and
    each waived one with the waiver's owner, reason and expiry; stale waivers are named too."""
    c = report.compliance
    if not c:
        return "<p>Compliance did not run.</p>"
    results = ", ".join(f"{e(n)} {e(k)}" for k, n in sorted((c.get("results") or {}).items()))
    failed = c.get("required_failed") or []
    blocking = c.get("blocking_rules") or []
    waived = c.get("waived") or []
    stale = c.get("stale_waivers") or []
    parts = [
        f"<p>Profile <code>{e(c.get('profile', ''))}</code> on the {e(c.get('rootfs', 'image'))}: {results}. "
        f'Required rules: {e(c.get("required", 0))}, not passed: <span class="{"fail" if failed else "pass"}" '
        f'id="compliance-failed">{len(failed)}</span>; other failing rules: '
        f'<span class="{"blocks" if blocking else "pass"}" id="compliance-blocking">{len(blocking)}</span> '
        f'unwaived, <span id="compliance-waived">{len(waived)}</span> waived.</p>'
    ]
    if failed or blocking:
        parts.append(
            "<ul>" + "".join(f'<li class="fail"><code>{e(r)}</code></li>' for r in [*failed, *blocking]) + "</ul>"
        )
    if waived:
        rows = [
            [
                f"<code>{e(w.get('finding', ''))}</code>",
                e(w.get("owner", "")),
                e(w.get("justification", "")),
                f'<span data-expires="{e(w.get("expires", ""))}">{e(w.get("expires", ""))}</span>',
            ]
            for w in waived
        ]
        parts.append(_table(("waived rule", "owner", "reason", "expires"), rows, "compliance-waivers"))
    if stale:
        parts.append(
            '<p class="skipped">Stale waivers (they waive nothing; remove them):</p><ul>'
            + "".join(f"<li><code>{e(w.get('waiver', ''))}</code>: {e(w.get('result', ''))}</li>" for w in stale)
            + "</ul>"
        )
    return "".join(parts)


def _checks(report: Report) -> str:
    if not report.checks:
        return "<p>No stage concluded by checks in this run.</p>"
    parts = []
    for stage, rows in report.checks.items():
        passed = sum(1 for r in rows if r["passed"])
        parts.append(f'<h3>{e(stage)}: <span data-checks="{e(stage)}">{passed}/{len(rows)}</span> checks pass</h3>')
        parts.append(
            _table(
                ("check", "outcome", "detail"),
                ([e(r["name"]), _verdict("pass" if r["passed"] else "fail"), e(r["detail"])] for r in rows),
                "checks",
            )
        )
    return "".join(parts)


def _outputs(report: Report) -> str:
    rows = [
        [
            e(s.name),
            f"<code>{e(o.get('name', ''))}</code>",
            f'<span class="digest">{e(short(o.get("digest", "")))}</span>',
        ]
        for s in report.stages
        for o in s.outputs
        if o.get("kind") == "oci" or not o.get("name", "").endswith(".sigstore.json")
    ]
    return _table(("stage", "artifact", "sha256"), rows, "artifacts")


def render(report: Report) -> str:
    run = report.run
    failed = [s.name for s in report.stages if s.verdict in ("fail", "error")]
    status = "fail" if failed else "pass"
    devices = (
        _table(
            ("device", "mode", "firmware version", "attestation", "verdict", "measured"),
            (
                [
                    e(d["device"]),
                    e(d["mode"]),
                    e(d["firmware"]),
                    e(d["attestation"]),
                    _verdict(d["verdict"]),
                    e(d["pcrs"]),
                ]
                for d in report.devices
            ),
        )
        if report.devices
        else "<p>No device stage in this run.</p>"
    )
    integrity = (
        '<h2>Integrity</h2><ul class="fail">' + "".join(f"<li>{e(i)}</li>" for i in report.integrity) + "</ul>"
        if report.integrity
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>secure-iot evidence report</title><style>{CSS}</style></head>
<body>
<h1>secure-iot evidence report — <span class="{status}" id="overall">{status}</span></h1>
<p class="muted">Generated from out/evidence.json and the files it names by sha256.
Stages: <span id="stage-count">{len(report.stages)}</span>.</p>
<dl class="run">
<dt>commit</dt><dd><code id="commit">{e(run["commit"])}</code></dd>
<dt>when</dt><dd>{e(run["when"])}</dd>
<dt>where</dt><dd>{e(run["where"])}</dd>
<dt>signer</dt><dd>{e(run["signer"])}</dd>
<dt>image</dt><dd><code>{e(run["image"])}</code></dd>
</dl>
{integrity}
<h2>Stages</h2>{_stages(report)}
<h2>Chain of custody</h2><div class="scroll">{svg.custody(report.nodes, report.edges)}</div>
<h2>Findings</h2>
<h3>SAST</h3>{_sast(report)}
<h3>Vulnerabilities</h3>{_vulns(report)}
<h3>Compliance</h3>{_compliance(report)}
<h2>Checks</h2>{_checks(report)}
<h2>Devices</h2>{devices}
<h2>Plots</h2><div class="figures">
<figure><figcaption>Stage durations over the last runs</figcaption>{svg.durations(report.history)}</figure>
<figure><figcaption>Open vulnerabilities by severity</figcaption>{svg.severities(report.severity_counts)}</figure>
</div>
<h2>Artifacts</h2>{_outputs(report)}
</body></html>
"""
