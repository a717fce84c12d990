"""Inline SVG drawn from the report's data: the chain of custody and two plots.

Every string placed in the SVG passes through html.escape (labels come from the evidence,
which may carry untrusted text such as a tag or a finding's message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from tasks.report.model import Node, short

VERDICT_FILL = {"pass": "#e6f4ea", "fail": "#fce8e6", "error": "#fce8e6", "skipped": "#fef7e0"}
VERDICT_STROKE = {"pass": "#1e8e3e", "fail": "#d93025", "error": "#d93025", "skipped": "#f9ab00"}
SEVERITY_COLOUR = {
    "critical": "#a50e0e",
    "high": "#d93025",
    "medium": "#f29900",
    "low": "#1a73e8",
    "info": "#80868b",
}
PALETTE = ("#1a73e8", "#e8710a", "#188038", "#d01884", "#9334e6", "#12b5cb", "#f9ab00", "#5f6368", "#a50e0e")


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "start", weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}">{escape(text)}</text>'
    )


def custody(nodes: Sequence[Node], edges: Sequence[tuple[str, str]]) -> str:
    if not nodes:
        return "<p>No stage of the chain of custody has run.</p>"
    w, h, gap_x, gap_y = 170, 46, 50, 16
    pos = {n.id: (10 + n.depth * (w + gap_x), 10 + n.row * (h + gap_y)) for n in nodes}
    width = max(x for x, _ in pos.values()) + w + 10
    height = max(y for _, y in pos.values()) + h + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="chain of custody" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="custody">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5f6368"/></marker></defs>',
    ]
    for source, target in edges:
        if source not in pos or target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[source], pos[target]
        sx, sy, tx, ty = x1 + w, y1 + h / 2, x2, y2 + h / 2
        mid = (sx + tx) / 2
        parts.append(
            f'<path class="edge" data-from="{escape(source)}" data-to="{escape(target)}" '
            f'd="M{sx:.1f},{sy:.1f} C{mid:.1f},{sy:.1f} {mid:.1f},{ty:.1f} {tx:.1f},{ty:.1f}" '
            'fill="none" stroke="#5f6368" stroke-width="1.2" marker-end="url(#arrow)"/>'
        )
    for node in nodes:
        x, y = pos[node.id]
        fill, stroke = VERDICT_FILL.get(node.verdict, "#f1f3f4"), VERDICT_STROKE.get(node.verdict, "#5f6368")
        parts.append(
            f'<g class="node" data-stage="{escape(node.id)}" data-verdict="{escape(node.verdict)}">'
            f"<title>{escape(node.label)} {escape(node.digest)}</title>"
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="{stroke}"/>'
            + _text(x + 8, y + 18, f"{node.label} — {node.verdict}" if node.id != "commit" else "commit", weight="bold")
            + _text(x + 8, y + 35, short(node.digest) if node.id != "commit" else node.digest[:12], size=10)
            + "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def durations(history: Sequence[Mapping[str, Any]]) -> str:
    """Stacked bars: one bar per run, one segment per stage (seconds)."""
    runs = [r for r in history if r.get("stages")]
    if not runs:
        return "<p>No run history yet.</p>"
    names: list[str] = []
    for run in runs:
        names += [n for n in run["stages"] if n not in names]
    totals = [sum(float(s.get("duration_s", 0)) for s in run["stages"].values()) for run in runs]
    top = max(max(totals), 1.0)
    bar, gap, plot_h, left, legend_w = 28, 14, 180, 44, 150
    width = left + len(runs) * (bar + gap) + legend_w
    height = plot_h + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="stage durations over the last runs" '
        f'viewBox="0 0 {width} {max(height, 20 + 14 * len(names))}" width="{width}" class="plot durations">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = 10 + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - legend_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dadce0"/>')
        parts.append(_text(left - 4, y + 4, f"{top * frac:.0f}s", size=10, anchor="end"))
    for i, run in enumerate(runs):
        x, y = left + 6 + i * (bar + gap), 10 + plot_h
        for j, name in enumerate(names):
            seconds = float(run["stages"].get(name, {}).get("duration_s", 0))
            if seconds <= 0:
                continue
            seg = plot_h * seconds / top
            y -= seg
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{seg:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(name)}: {seconds:.1f}s</title></rect>"
            )
        parts.append(_text(x + bar / 2, 10 + plot_h + 14, f"#{i + 1}", size=10, anchor="middle"))
        parts.append(_text(x + bar / 2, y - 3, f"{totals[i]:.0f}s", size=9, anchor="middle"))
    for j, name in enumerate(names):
        lx, ly = width - legend_w + 10, 14 + j * 14
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>')
        parts.append(_text(lx + 14, ly, name, size=10))
    parts.append(_text(left, height - 6, "run (oldest → newest)", size=10))
    parts.append("</svg>")
    return "".join(parts)


def severities(counts: Mapping[str, int]) -> str:
    """Horizontal bars: open (not VEX-accepted) vulnerability matches by severity."""
    if not counts:
        return "<p>No vulnerability scan in this run.</p>"
    top = max(max(counts.values()), 1)
    row, left, span = 22, 70, 300
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="vulnerabilities by severity" '
        f'viewBox="0 0 {left + span + 50} {row * len(counts) + 10}" width="{left + span + 50}" class="plot severities">'
    ]
    for i, (severity, n) in enumerate(counts.items()):
        y = 5 + i * row
        parts.append(_text(left - 6, y + 14, severity, anchor="end"))
        length = span * n / top
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{SEVERITY_COLOUR.get(severity, "#5f6368")}"/>'
        )
        parts.append(
            f'<text x="{left + length + 6:.1f}" y="{y + 14}" font-size="11" class="count" '
            f'data-severity="{escape(severity)}">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
