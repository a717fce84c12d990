"""actionlint and zizmor (offline, auditor persona), their machine output read into problems."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.source.workflows.model import JSON, Problem, Workflow

ZIZMOR_FINDINGS_EXIT = range(10, 20)  # 1x: findings, by highest severity; anything else is a crash


def run_actionlint(ctx: Context, rec: StageRecord, workflows: Sequence[Workflow], out: Path) -> list[Problem]:
    done = runner.run(
        rec,
        ctx.tool("actionlint"),
        ["-no-color", "-shellcheck=", "-pyflakes=", "-format", "{{json .}}", *(str(w.path) for w in workflows)],
        cwd=ctx.root,
        check=False,
    )
    if done.returncode not in (0, 1):  # 1: problems found; 2: bad flags; 3: crash
        raise ToolError(f"actionlint exited {done.returncode}: {done.tail()}")
    try:
        errors = json.loads(done.stdout or "[]") or []
    except json.JSONDecodeError as exc:
        raise ToolError(f"actionlint: output is not JSON ({exc}): {done.stdout[:200]}") from exc
    atomic.write_json(out, errors)
    if rec is not None:
        rec.add_output(out, JSON)
    return [
        Problem("actionlint", relative(ctx.root, e.get("filepath", "")), int(e.get("line", 0)), _actionlint_message(e))
        for e in errors
    ]


def _actionlint_message(error: Mapping[str, Any]) -> str:
    return f"{error.get('message', '?')} [{error.get('kind', '?')}]"


def run_zizmor(ctx: Context, rec: StageRecord, out: Path) -> list[Problem]:
    target = ctx.inside(".github")
    done = runner.run(
        rec,
        ctx.tool("zizmor"),
        ["--offline", "--persona", "auditor", "--no-config", "--no-progress", "--format", "json", target],
        cwd=ctx.root,
        check=False,
        env={"ZIZMOR_OFFLINE": "true", "NO_COLOR": "1"},
    )
    if done.returncode != 0 and done.returncode not in ZIZMOR_FINDINGS_EXIT:
        raise ToolError(f"zizmor exited {done.returncode}: {done.tail()}")
    try:
        findings = json.loads(done.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise ToolError(f"zizmor: output is not JSON ({exc}): {done.stdout[:200]}") from exc
    atomic.write_json(out, findings)
    if rec is not None:
        rec.add_output(out, JSON)
    return [_zizmor_problem(ctx.root, f) for f in findings if not f.get("ignored")]


def _zizmor_problem(root: Path, finding: Mapping[str, Any]) -> Problem:
    locations = finding.get("locations") or [{}]
    primary = next((loc for loc in locations if loc.get("symbolic", {}).get("kind") == "Primary"), locations[0])
    key = primary.get("symbolic", {}).get("key", {}).get("Local", {})
    path = key.get("verbatim_path") or key.get("given_path") or "?"
    row = primary.get("concrete", {}).get("location", {}).get("start_point", {}).get("row", -1)
    annotation = primary.get("symbolic", {}).get("annotation", "")
    severity = finding.get("determinations", {}).get("severity", "")
    message = f"{finding.get('ident')}: {finding.get('desc')}" + (f" ({annotation})" if annotation else "")
    return Problem("zizmor", relative(root, path), int(row) + 1, f"{message} [{severity}]")


def relative(root: Path, path: str) -> str:
    p = Path(path)
    if p.is_absolute() and p.is_relative_to(root):
        return str(p.relative_to(root))
    return path
