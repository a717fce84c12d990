"""Go: gosec over every directory holding Go files in scope (test files included).

gosec type-checks each package, so the dependencies of each Go module must be in the module
cache: `go mod download` (recorded; a no-op offline once the cache is warm) fills it, then
gosec runs with GOPROXY=off. A package that does not load fails the stage (the rules that need
types would be blind). Its JSON report is read (its SARIF names files without their
directory); the findings are written back out as out/sast/gosec.sarif for code scanning.
`-nosec`: `#nosec` and `//gosec:disable` do not silence the gate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.policy.findings import Finding, Severity
from tasks.source.sast.converted import as_sarif
from tasks.toolchain.go import go_env, module_toolchain


def module_of(root: Path, directory: str) -> str | None:
    """The Go module (the nearest directory holding go.mod) a package directory belongs to."""
    for candidate in (PurePosixPath(directory), *PurePosixPath(directory).parents):
        if (root / candidate / "go.mod").is_file():
            return str(candidate)
    return None


def modules(root: Path, directories: Sequence[str]) -> list[str]:
    """The Go modules the package directories belong to."""
    return sorted({m for d in directories if (m := module_of(root, d)) is not None})


def scan(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    """One gosec run per Go toolchain: a wrapper module whose go.mod names a newer Go (tools/argocd)
    is loaded with that toolchain; the rest with the host's, whose build cache stays warm."""
    report = ctx.stage_dir("sast") / "gosec.json"
    report.unlink(missing_ok=True)
    directories = sorted({str(PurePosixPath(f).parent) for f in files})
    go = ctx.tool("go")
    toolchains = {"": ""}  # module -> its toolchain line ("" for the host's Go, and for no module)
    for module in modules(ctx.root, directories):
        toolchains[module] = module_toolchain(ctx.root / module / "go.mod")
        runner.run(rec, go, ["mod", "download"], cwd=ctx.root / module, env=go_env(toolchains[module]), timeout=1800)
    groups: dict[str, list[str]] = {}
    for directory in directories:
        groups.setdefault(toolchains[module_of(ctx.root, directory) or ""], []).append(directory)
    tool = ctx.tool("gosec")
    merged: dict[str, Any] = {"Golang errors": {}, "Issues": []}  # gosec's own report shape, all groups
    for toolchain, group in sorted(groups.items()):
        part = report.with_suffix(f".{toolchain or 'host'}.json")
        part.unlink(missing_ok=True)
        done = runner.run(
            rec,
            tool,
            ["-nosec", "-tests", "-fmt", "json", "-out", part, *(f"./{d}" for d in group)],
            cwd=ctx.root,
            env={**go_env(toolchain), "GOPROXY": "off"},
            check=False,
            timeout=1800,
        )
        if done.returncode not in (0, 1) or not part.is_file():  # 1: issues found
            raise InputError(f"gosec exited {done.returncode}: {done.tail()}")
        data = _report(part)
        merged["Golang errors"].update(data.get("Golang errors") or {})
        merged["Issues"] += data.get("Issues") or []
        part.unlink()
    atomic.write_json(report, merged)
    rec.add_output(report, "application/json")
    return as_sarif(ctx, rec, tool, _findings(ctx, merged, set(files)))


def _report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not gosec's JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not gosec's JSON report (not an object)")
    return data


def _findings(ctx: Context, data: dict[str, Any], in_scope: set[str]) -> list[Finding]:
    """The findings of gosec's (merged) JSON report; a file gosec could not type-check fails the gate."""
    unloaded = data.get("Golang errors") or {}
    issues = data.get("Issues") or []
    if unloaded:
        shown = "; ".join(
            f"{ctx.rel(Path(file))}: {errors[0].get('error', '?') if errors else '?'}"
            for file, errors in list(unloaded.items())[:5]
        )
        raise InputError(f"gosec could not type-check {len(unloaded)} file(s), the gate cannot pass them: {shown}")
    findings = []
    for issue in issues:
        path = ctx.rel(Path(issue["file"]))
        if path not in in_scope:  # a package directory can hold an excluded (or generated) file
            continue
        cwe = (issue.get("cwe") or {}).get("id")
        findings.append(
            Finding(
                tool="gosec",
                rule=str(issue["rule_id"]),
                severity=Severity.parse(str(issue["severity"])),
                location=f"{path}:{str(issue['line']).split('-')[0]}",
                message=str(issue["details"]) + (f" (CWE-{cwe})" if cwe else ""),
                path=path,
            )
        )
    return findings
