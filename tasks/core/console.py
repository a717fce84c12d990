"""Human output: rich tables for findings and the pipeline summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tasks.core.evidence import not_covered_notes

console = Console(stderr=True, highlight=False)

VERDICT_STYLE = {"pass": "green", "fail": "red", "error": "red", "skipped": "yellow"}


def error_line(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def summary_table(stages: Mapping[str, Mapping[str, Any]], order: Iterable[str]) -> None:
    table = Table(title="pipeline summary", title_justify="left")
    for col in ("stage", "verdict", "duration", "main outputs", "opt-outs / reason"):
        table.add_column(col, overflow="fold")
    for name in order:
        rec = stages.get(name)
        if rec is None:
            table.add_row(name, "[yellow]not run[/]", "", "", "")
            continue
        verdict = rec.get("verdict", "?")
        outputs = ", ".join(
            f"{o['name']}@{o['digest'][:19]}" if o.get("kind") == "oci" else o["name"]
            for o in rec.get("outputs", [])[:4]
        )
        opt_outs = [o.split(":", 1)[0] for o in rec.get("opt_outs", [])]  # the flag; details in evidence
        notes = "; ".join(
            [
                *(f"opt-out: {o}" for o in opt_outs),
                *not_covered_notes(rec),
                *([] if opt_outs or not rec.get("reason") else [str(rec["reason"])]),
            ]
        )
        table.add_row(
            name,
            f"[{VERDICT_STYLE.get(verdict, 'white')}]{verdict}[/]",
            f"{rec.get('duration_s', 0):.1f}s",
            outputs,
            notes,
        )
    console.print(table)


def tools_table(resolved: Mapping[str, Any], pins: Mapping[str, Any]) -> None:
    """One row per resolved tool: its version (an apt tool's may be above the pinned minimum), route, where it is."""
    table = Table(title="pinned tools", title_justify="left")
    for col in ("tool", "version", "route", "sha256", "path"):
        table.add_column(col, overflow="fold")
    for name, tool in resolved.items():
        shown = tool.version if tool.version == pins[name].version else f"{tool.version} (min {pins[name].version})"
        table.add_row(name, shown, tool.route, tool.sha256[:16], str(tool.path))
    console.print(table)


def checks_table(title: str, rows: Iterable[tuple[str, bool, str]]) -> None:
    """PASS/FAIL per check, with what was found."""
    table = Table(title=title, title_justify="left")
    for col in ("check", "outcome", "detail"):
        table.add_column(col, overflow="fold")
    for name, passed, detail in rows:
        table.add_row(escape(name), "[green]PASS[/]" if passed else "[red]FAIL[/]", escape(detail))
    console.print(table)
