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

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.policy.findings import Finding, Severity
from tasks.source.sast.converted import as_sarif
from tasks.toolchain.go import go_env


def modules(root: Path, directories: Sequence[str]) -> list[str]:
    """The Go modules (directories holding go.mod) the package directories belong to."""
    found = set()
    for directory in directories:
        for candidate in (PurePosixPath(directory), *PurePosixPath(directory).parents):
            if (root / candidate / "go.mod").is_file():
                found.add(str(candidate))
                break
    return sorted(found)


def scan(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    report = ctx.stage_dir("sast") / "gosec.json"
    report.unlink(missing_ok=True)
    directories = sorted({str(PurePosixPath(f).parent) for f in files})
    env = go_env()
    go = ctx.tool("go")
    for module in modules(ctx.root, directories):
        runner.run(rec, go, ["mod", "download"], cwd=ctx.root / module, env=env, timeout=1800)
    tool = ctx.tool("gosec")
    done = runner.run(
        rec,
        tool,
        ["-nosec", "-tests", "-quiet", "-fmt", "json", "-out", report, *(f"./{d}" for d in directories)],
        cwd=ctx.root,
        env={**env, "GOPROXY": "off"},
        check=False,
        timeout=1800,
    )
    if done.returncode not in (0, 1) or not report.is_file():  # 1: issues found
        raise InputError(f"gosec exited {done.returncode}: {done.tail()}")
    rec.add_output(report, "application/json")
    return as_sarif(ctx, rec, tool, _findings(ctx, report, set(files)))


def _findings(ctx: Context, report: Path, in_scope: set[str]) -> list[Finding]:
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        unloaded = data.get("Golang errors") or {}
        issues = data.get("Issues") or []
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"{report}: not gosec's JSON report ({exc})") from None
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
