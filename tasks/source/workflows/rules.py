"""Pins and hardening: SHA-pinned actions, least privilege, no soft gates, reasoned suppressions, ruleset."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tasks.core.media_types import IMAGE_DIGEST
from tasks.source.workflows.model import Problem, Workflow

# The only `uses:` references allowed to be pinned by tag instead of a commit SHA, and why.
# The ref must still be a full vX.Y.Z tag; the line carries a `# zizmor: ignore[unpinned-uses]`
# comment with the same reason.
TAG_PINNED_ALLOWED: dict[str, str] = {
    "slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml": (
        "slsa-github-generator's reusable workflows must be referenced by a vX.Y.Z tag: the generator "
        "verifies its own ref (a SHA fails with 'Expected ref of the form refs/tags/vX.Y.Z') and "
        "slsa-verifier derives the trusted builder identity from that tag"
    ),
}


SHA_PIN = re.compile(r"^[0-9a-f]{40}$")


FULL_TAG = re.compile(r"^v\d+\.\d+\.\d+$")


VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+){0,2}\b")


ZIZMOR_IGNORE = re.compile(r"#\s*zizmor:\s*ignore\[([^\]]*)\](.*)$")


# A gate that CI runs but whose failure cannot fail the job does not count as run.
SOFT_RUN = re.compile(r"\|\|\s*(true|:|exit 0)\b|;\s*(true|:)\s*$|--allow-missing-db", re.MULTILINE)


def enforced(ci: Workflow | None) -> list[Problem]:
    """In ci.yml, a job or step that runs nox must be able to fail the run: no
    continue-on-error, no `if:` that is constantly false, no `|| true`, no opt-out flags."""
    if ci is None:
        return []
    problems = []
    for job_name, job in (ci.data.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        steps = [s for s in job.get("steps", []) if isinstance(s, dict) and "nox" in str(s.get("run", ""))]
        for where, node in [
            (f"job {job_name}", job),
            *((f"job {job_name}, step {s.get('name', '?')}", s) for s in steps),
        ]:
            if where.startswith("job ") and ", step" not in where and not steps:
                continue
            if node.get("continue-on-error") not in (None, False):
                problems.append(
                    Problem("enforced", ci.name, 0, f"{where}: continue-on-error lets a gate fail silently")
                )
            condition = str(node.get("if", "")).lower()  # `if: false` parses as a YAML boolean
            if re.search(r"(^|[^!=])\bfalse\b", condition):
                problems.append(Problem("enforced", ci.name, 0, f"{where}: `if: {condition}` can skip the gate"))
        for step in steps:
            match = SOFT_RUN.search(str(step.get("run", "")))
            if match and "summary" not in str(step.get("run", "")):
                problems.append(
                    Problem(
                        "enforced",
                        ci.name,
                        0,
                        f"job {job_name}, step {step.get('name', '?')}: `{match.group(0).strip()}` "
                        "hides the gate's exit status",
                    )
                )
    return problems


def pins(workflows: Iterable[Workflow], allowed: Mapping[str, str] = TAG_PINNED_ALLOWED) -> list[Problem]:
    problems: list[Problem] = []
    for wf in workflows:
        lines = wf.lines
        for scalar in wf.scalars:
            if scalar.key != "uses":
                continue
            ref = scalar.value.strip()
            source = lines[scalar.line - 1] if 0 < scalar.line <= len(lines) else ""
            if ref.startswith("./"):
                continue  # an action of this repository, at this commit
            if ref.startswith("docker://"):
                if not IMAGE_DIGEST.search(ref):
                    problems.append(Problem("pin", wf.name, scalar.line, f"{ref}: a docker:// action must be @sha256:"))
                continue
            action, _, version = ref.partition("@")
            if not version:
                problems.append(Problem("pin", wf.name, scalar.line, f"{ref}: no ref at all (pin a commit SHA)"))
            elif SHA_PIN.match(version):
                if not VERSION_COMMENT.search(source):
                    problems.append(
                        Problem("pin", wf.name, scalar.line, f"{ref}: add the release as a `# vX.Y.Z` comment")
                    )
            elif action in allowed:
                if not FULL_TAG.match(version):
                    problems.append(
                        Problem("pin", wf.name, scalar.line, f"{ref}: allowed by tag, but only a full vX.Y.Z tag")
                    )
            else:
                problems.append(
                    Problem("pin", wf.name, scalar.line, f"{ref}: pinned by tag or branch, pin a full commit SHA")
                )
    return problems


def _triggers(data: Mapping[Any, Any]) -> set[str]:
    on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` key as True
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(t) for t in on}
    if isinstance(on, dict):
        return {str(t) for t in on}
    return set()


def hardening(workflows: Iterable[Workflow]) -> list[Problem]:
    problems: list[Problem] = []
    for wf in workflows:
        data = wf.data
        if data.get("permissions") != {}:
            problems.append(Problem("hardening", wf.name, 0, "top-level `permissions: {}` is required"))
        if "concurrency" not in data:
            problems.append(Problem("hardening", wf.name, 0, "no concurrency group"))
        if "pull_request_target" in _triggers(data):
            problems.append(Problem("hardening", wf.name, 0, "pull_request_target runs untrusted code with secrets"))
        jobs = data.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            problems.append(Problem("hardening", wf.name, 0, "no jobs"))
            continue
        for job_id, job in jobs.items():
            if not isinstance(job, dict):
                continue
            if "uses" in job:
                continue  # a reusable-workflow call cannot carry timeout-minutes
            if "permissions" not in job:
                problems.append(Problem("hardening", wf.name, 0, f"job '{job_id}' has no explicit permissions"))
            if "timeout-minutes" not in job:
                problems.append(Problem("hardening", wf.name, 0, f"job '{job_id}' has no timeout-minutes"))
    return problems


def suppressions(files: Iterable[tuple[str, str]]) -> tuple[list[Problem], list[dict[str, Any]]]:
    """Every inline `# zizmor: ignore[rule]` must say why after the bracket."""
    problems: list[Problem] = []
    found: list[dict[str, Any]] = []
    for name, text in files:
        for number, line in enumerate(text.splitlines(), start=1):
            match = ZIZMOR_IGNORE.search(line)
            if not match:
                continue
            rules, reason = match.group(1).strip(), match.group(2).strip(" -—:")
            found.append({"file": name, "line": number, "rules": rules, "reason": reason})
            if len(reason.split()) < 3:
                problems.append(
                    Problem("suppression", name, number, f"zizmor: ignore[{rules}] without a reason after the bracket")
                )
    return problems, found


def ci_check_names(ci: Workflow) -> set[str]:
    """The status-check names of ci.yml's jobs: their `name:`, else their id."""
    jobs = ci.data.get("jobs") or {}
    return {str(job.get("name", job_id)) if isinstance(job, dict) else job_id for job_id, job in jobs.items()}


def ruleset(path: Path, ci: Workflow | None, root: Path) -> list[Problem]:
    """The branch ruleset requires exactly the ci.yml jobs as status checks."""
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    if not path.is_file():
        return [Problem("ruleset", rel, 0, "the branch ruleset (signed commits, required checks) is missing")]
    if ci is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [Problem("ruleset", rel, 0, f"not valid JSON ({exc})")]
    required: set[str] = set()
    for rule in data.get("rules", []):
        if rule.get("type") == "required_status_checks":
            checks = rule.get("parameters", {}).get("required_status_checks", [])
            required |= {str(c.get("context")) for c in checks}
    jobs = ci_check_names(ci)
    problems = [
        Problem("ruleset", rel, 0, f"required status check '{name}' is not a job of {ci.name}")
        for name in sorted(required - jobs)
    ]
    problems += [
        Problem("ruleset", rel, 0, f"{ci.name} job '{name}' is not a required status check")
        for name in sorted(jobs - required)
    ]
    return problems
