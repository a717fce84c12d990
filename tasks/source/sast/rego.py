"""Rego: `opa check --strict` and Regal over every .rego file in scope.

Each file is checked on its own: the repository's Rego files are independent policies (each
ClusterImagePolicy and each `verify` evaluation carries one), several of them
`package sigstore` with their own `default isCompliant`, which one compilation would reject.

- opa check --strict: any error (parse, type, unused import or variable, ...) -> high: a
  verify or admission policy that does not compile as written is a hole in the gate. The
  repository's modules are templates: the pipeline appends `params := {...}` before OPA sees
  them (tasks/policy/rego.py, tasks/admission/cluster_image_policy.py). A module that reads
  `params` and does not define it is checked as rendered, from a copy that ends in
  `params := data.params` (parameters of any shape), every line in place.
- Regal (`github.com/styrainc/regal`): category `bugs` -> medium (e.g. `!=` inside a loop,
  the classic Rego bypass); style, idiomatic, imports, performance, testing -> low (reported,
  below the threshold). It runs with the pipeline's own config file (`rules: {}`: the
  defaults), so no .regal/config.yaml in the tree is read, on a copy without
  `# regal ignore:` directives (suppressions.py).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.policy.findings import Finding, Severity
from tasks.policy.rego import FRESHNESS
from tasks.source.sast.converted import as_sarif, keep_report
from tasks.source.sast.suppressions import REGAL, neutralized_copy

REGAL_FAILS_ON = {"bugs": Severity.MEDIUM}
READS_PARAMS = re.compile(r"\bparams\b")
DEFINES_PARAMS = re.compile(r"^(default\s+)?params\s*(:=|=|\bif\b|\{)", re.MULTILINE)
RENDERED_PARAMS = "\n# appended by the SAST stage, as the pipeline appends the real parameters\nparams := data.params\n"
# freshness.rego is appended by the pipeline to a time-dependent type's module, which defines
# `issued` (the statement's timestamp); checked alone, it gets `issued` the same way as params.
RENDERED_FRAGMENT = {
    FRESHNESS: "\n# appended by the SAST stage: the type module it joins defines it\nissued := data.issued\n"
}


def as_rendered(root: Path, files: Sequence[str], dest: Path) -> None:
    """Copies of ``files`` under ``dest``; a template that reads ``params`` gets it appended."""
    shutil.rmtree(dest, ignore_errors=True)
    for name in files:
        text = (root / name).read_text(encoding="utf-8")
        if READS_PARAMS.search(text) and not DEFINES_PARAMS.search(text):
            text += RENDERED_PARAMS
        text += RENDERED_FRAGMENT.get(Path(name).name, "")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(dest / name, text)


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not JSON ({exc}): {text[:200]}") from None
    if not isinstance(data, dict):
        raise InputError(f"{what}: expected a JSON object")
    return data


def opa_check(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    tool = ctx.tool("opa")
    copy = ctx.stage_dir("sast") / "opa-src"
    as_rendered(ctx.root, files, copy)
    findings: list[Finding] = []
    reports = {}
    for name in files:
        done = runner.run(rec, tool, ["check", "--strict", "--format", "json", name], cwd=copy, check=False)
        if done.returncode == 0:
            continue
        text = done.stdout.strip() or done.stderr.strip()
        errors = _json(text, f"opa check {name}").get("errors") or []
        if not errors:
            raise InputError(f"opa check exited {done.returncode} on {name} without an error report: {done.tail()}")
        reports[name] = errors
        for error in errors:
            where = error.get("location") or {}
            path = str(where.get("file") or name)
            findings.append(
                Finding(
                    tool="opa",
                    rule=f"opa-check/{error.get('code', 'error')}",
                    severity=Severity.HIGH,
                    location=f"{path}:{where.get('row', 0)}",
                    message=str(error.get("message", "")),
                    path=path,
                )
            )
    keep_report(ctx, rec, "opa-check.json", json.dumps(reports, indent=2, sort_keys=True) + "\n")
    return as_sarif(ctx, rec, tool, findings)


def regal(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    stage = ctx.stage_dir("sast")
    copy, config = stage / "regal-src", stage / "regal.yaml"
    rec.details.setdefault("inline_suppressions_ignored", {})["regal"] = neutralized_copy(ctx.root, files, copy, REGAL)
    atomic.write_text(config, "rules: {}\n")
    tool = ctx.tool("regal")
    done = runner.run(
        rec, tool, ["lint", "--config-file", config, "--format", "json", "--no-color", *files], cwd=copy, check=False
    )
    if done.returncode not in (0, 3):  # 3: violations found
        raise InputError(f"regal exited {done.returncode}: {done.tail()}")
    keep_report(ctx, rec, "regal.json", done.stdout)
    findings = []
    for violation in _json(done.stdout, "regal lint").get("violations") or []:
        where = violation.get("location") or {}
        path = str(where.get("file") or "")
        findings.append(
            Finding(
                tool="regal",
                rule=f"regal/{violation.get('category', '?')}/{violation.get('title', '?')}",
                severity=REGAL_FAILS_ON.get(str(violation.get("category")), Severity.LOW),
                location=f"{path}:{where.get('row', 0)}",
                message=str(violation.get("description", "")),
                path=path,
            )
        )
    return as_sarif(ctx, rec, tool, findings)
