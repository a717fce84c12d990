"""The workflows gate: every check over .github/, the problems, and one row per kind of check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tasks.context import Context
from tasks.core import atomic
from tasks.core.checks import Check
from tasks.core.evidence import StageRecord
from tasks.source.workflows.linters import relative, run_actionlint, run_zizmor
from tasks.source.workflows.model import CI_WORKFLOW, JSON, RULESET, YAML, Problem, load_workflows
from tasks.source.workflows.parity import available_sessions, parity, required_in_ci
from tasks.source.workflows.rules import TAG_PINNED_ALLOWED, enforced, hardening, pins, ruleset, suppressions


def check(ctx: Context, rec: StageRecord) -> tuple[list[Problem], dict[str, Any]]:
    """All four checks over ctx.root; the problems, and a JSON-able summary."""
    out_dir = ctx.stage_dir("workflows")
    workflows = load_workflows(ctx.root)
    for wf in workflows:
        rec.add_input(wf.path, YAML)
    sessions = available_sessions(ctx.root)
    required = required_in_ci()
    parity_problems, runs = parity(workflows, sessions, required)
    ci = next((w for w in workflows if w.path.name == CI_WORKFLOW), None)
    github_files = sorted(p for p in ctx.inside(".github").rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    suppression_problems, suppressed = suppressions(
        (relative(ctx.root, str(p)), p.read_text(encoding="utf-8")) for p in github_files
    )
    problems = [
        *run_actionlint(ctx, rec, workflows, out_dir / "actionlint.json"),
        *run_zizmor(ctx, rec, out_dir / "zizmor.json"),
        *parity_problems,
        *enforced(ci),
        *pins(workflows),
        *hardening(workflows),
        *suppression_problems,
        *ruleset(ctx.inside(RULESET), ci, ctx.root),
    ]
    summary: dict[str, Any] = {
        "workflows": [w.name for w in workflows],
        "sessions_available": sorted(sessions),
        "sessions_run": runs,
        "required_in_ci": list(required),
        "tag_pinned_allowed": TAG_PINNED_ALLOWED,
        "suppressions": suppressed,
        "actionlint_integrations": "shellcheck and pyflakes off: not pinned in tools.lock",
        "problems": [asdict(p) for p in problems],
    }
    result = out_dir / "workflows.json"
    atomic.write_json(result, summary)
    rec.add_output(result, JSON)
    return problems, summary


def reason(problems: Sequence[Problem]) -> str:
    """One line naming each distinct problem once, with every place it occurs."""
    places: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        places.setdefault((p.check, p.message), []).append(f"{p.file}:{p.line}" if p.line else p.file)
    return "; ".join(f"[{check}] {message} ({', '.join(where)})" for (check, message), where in places.items())


# The gate's checks, in the order they run; each passes only with no problem of its kind.
KINDS = ("actionlint", "zizmor", "parity", "enforced", "pin", "hardening", "suppression", "ruleset")


def checks(problems: Sequence[Problem]) -> list[Check]:
    """One row per kind of check: clean, or every distinct problem with its places."""
    unknown = sorted({p.check for p in problems} - set(KINDS))
    rows = [
        Check(kind, not (found := [p for p in problems if p.check == kind]), reason(found) or "clean") for kind in KINDS
    ]
    return rows + [Check(kind, False, reason([p for p in problems if p.check == kind])) for kind in unknown]
