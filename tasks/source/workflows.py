"""Talk 03 — the CI workflows are part of the supply chain: least privilege, pinned, complete.

Four checks, all required to pass with zero findings:

1. actionlint (syntax, expressions, untrusted input in `run:`), machine output as JSON.
   Its shellcheck/pyflakes integrations are off: those tools are not pinned in tools.lock,
   and a result must not depend on what happens to be on PATH.
2. zizmor `--offline --persona auditor` over .github/ (workflows, composite actions,
   dependabot.yml). `--no-config`: an exception is an inline `# zizmor: ignore[rule]`
   comment next to the line it excuses, and it must carry a reason (checked here).
3. Session parity: every `nox -s ...` (and `python -m tasks <stage>`) in a `run:` names a
   session that exists — the stage catalogue plus the @nox.session functions of
   noxfile.py, read with `ast`, nox is not run — and ci.yml runs every stage of the
   default pipeline plus `policy` and `verify`. The branch ruleset requires exactly the
   ci.yml jobs.
4. Pins and hardening: every `uses:` is a 40-hex commit SHA with a `# vX.Y.Z` comment
   (except the entries of TAG_PINNED_ALLOWED, each with its reason); top-level
   `permissions: {}`, a concurrency group, `timeout-minutes` on every job, and no
   `pull_request_target`.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import IMAGE_DIGEST

WORKFLOW_DIR = ".github/workflows"
CI_WORKFLOW = "ci.yml"
RULESET = ".github/rulesets/main.json"
JSON = "application/json"
YAML = "application/yaml"

# Stages ci.yml must run besides the default pipeline (tasks.catalogue.PIPELINE).
REQUIRED_IN_CI_EXTRA: tuple[str, ...] = ("policy", "verify")

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
ZIZMOR_FINDINGS_EXIT = range(10, 20)  # 1x: findings, by highest severity; anything else is a crash
COMMAND_PREFIXES = frozenset({"exec", "env", "time", "sudo", "command"})
SESSION_FLAGS = ("-s", "-e", "--session", "--sessions")
SHELL_STOP = frozenset({"&&", "||", ";", "|", "&", ">", ">>", "<", "<<", "(", ")", "2>", "2>>"})


def required_in_ci() -> tuple[str, ...]:
    """The default pipeline's stages, then the extras, each once."""
    return tuple(dict.fromkeys((*PIPELINE, *REQUIRED_IN_CI_EXTRA)))


@dataclass(frozen=True)
class Problem:
    check: str  # actionlint | zizmor | parity | pin | hardening | suppression | ruleset
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: [{self.check}] {self.message}"


@dataclass(frozen=True)
class Scalar:
    """A `run:` or `uses:` value of a workflow, with the line it starts on (1-based)."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class Workflow:
    path: Path
    name: str  # path relative to the repository root
    text: str
    data: dict[str, Any]
    scalars: tuple[Scalar, ...]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass(frozen=True)
class NoxCall:
    sessions: tuple[str, ...]
    line: int
    via: str  # "nox" or "python -m tasks"


# --- loading ------------------------------------------------------------------------------


def _walk(node: yaml.Node) -> Iterator[Scalar]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in ("run", "uses") and isinstance(value, yaml.ScalarNode):
                # a block scalar (`run: |`) starts on the line after its indicator
                first = value.start_mark.line + (2 if value.style in ("|", ">") else 1)
                yield Scalar(key.value, value.value, first)
            else:
                yield from _walk(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item)


def load_workflow(path: Path, root: Path) -> Workflow:
    text = path.read_text(encoding="utf-8")
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{rel}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or node is None:
        raise InputError(f"{rel}: not a GitHub Actions workflow (expected a mapping)")
    return Workflow(path, rel, text, data, tuple(_walk(node)))


def load_workflows(root: Path) -> list[Workflow]:
    directory = root / WORKFLOW_DIR
    files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
    if not files:
        raise InputError(f"{directory}: no workflow files found")
    return [load_workflow(path, root) for path in files]


# --- sessions -----------------------------------------------------------------------------


def noxfile_sessions(noxfile: Path) -> set[str]:
    """Sessions defined with @nox.session in noxfile.py (name= wins over the function name)."""
    if not noxfile.is_file():
        raise InputError(f"{noxfile}: noxfile.py not found")
    tree = ast.parse(noxfile.read_text(encoding="utf-8"), filename=str(noxfile))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if not (isinstance(target, ast.Attribute) and target.attr == "session"):
                continue
            if not (isinstance(target.value, ast.Name) and target.value.id == "nox"):
                continue
            name = node.name
            for kw in call.keywords if call else []:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    name = kw.value.value
            found.add(name)
    return found


def available_sessions(root: Path) -> set[str]:
    """What `nox -l` would list: one session per catalogue stage, plus noxfile.py's own."""
    return set(CATALOGUE) | noxfile_sessions(root / "noxfile.py")


def _commands(script: str) -> Iterator[tuple[int, list[str]]]:
    """(line offset, tokens) per shell line of ``script``; continuation lines are joined."""
    pending, start = "", 0
    for offset, raw in enumerate(script.splitlines()):
        if not pending:
            start = offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes (heredoc bodies): fall back to words
            tokens = line.split()
        yield start, tokens


def nox_calls(script: str, first_line: int) -> list[NoxCall]:
    """Sessions named by `nox -s a b`, `nox -s a -s b`, `./bootstrap.sh nox ...` and
    `python -m tasks <stage>` in one `run:` script."""
    calls: list[NoxCall] = []
    for offset, tokens in _commands(script):
        for i, word in enumerate(tokens):
            line = first_line + offset
            if (word == "nox" or word.endswith("/nox")) and _in_command_position(tokens, i):
                calls.append(NoxCall(tuple(_session_args(tokens[i + 1 :])), line, "nox"))
            elif word == "tasks" and i >= 2 and tokens[i - 1] == "-m" and "python" in tokens[i - 2]:
                stage = tokens[i + 1] if i + 1 < len(tokens) and tokens[i + 1] not in SHELL_STOP else ""
                calls.append(NoxCall((stage,), line, "python -m tasks"))
    return calls


def _in_command_position(tokens: Sequence[str], i: int) -> bool:
    """`nox` as the command run (`nox ...`, `./bootstrap.sh nox ...`, `a && nox ...`), not an
    argument (`pip install nox`)."""
    if i == 0:
        return True
    before = tokens[i - 1]
    return before in SHELL_STOP or before in COMMAND_PREFIXES or before.endswith("bootstrap.sh")


def _session_args(words: Sequence[str]) -> list[str]:
    """Session names after `nox`; a bare `nox` runs the default session, `pipeline`."""
    names: list[str] = []
    selecting, saw_flag = False, False
    for word in words:
        if word in SHELL_STOP or word == "--":
            break
        if word in SESSION_FLAGS:
            selecting, saw_flag = True, True
            continue
        if word.startswith("-"):
            selecting = False
            continue
        if selecting:
            names.append(word)
    if not saw_flag:
        return ["pipeline"]
    return names or [""]


def parity(
    workflows: Sequence[Workflow],
    sessions: set[str],
    required_in_ci: Sequence[str],
    ci_name: str = CI_WORKFLOW,
) -> tuple[list[Problem], dict[str, list[str]]]:
    """Every named session exists; ci.yml runs every required stage. Returns the problems and
    the sessions each workflow runs."""
    problems: list[Problem] = []
    runs: dict[str, list[str]] = {}
    ci: Workflow | None = None
    for wf in workflows:
        if wf.path.name == ci_name:
            ci = wf
        called: list[str] = []
        for scalar in wf.scalars:
            if scalar.key != "run":
                continue
            for call in nox_calls(scalar.value, scalar.line):
                for name in call.sessions:
                    if not name:
                        problems.append(Problem("parity", wf.name, call.line, f"`{call.via}` names no session"))
                    elif call.via == "nox" and name not in sessions:
                        problems.append(
                            Problem(
                                "parity",
                                wf.name,
                                call.line,
                                f"`nox -s {name}`: no such session (tasks.catalogue + noxfile.py)",
                            )
                        )
                    elif call.via != "nox" and name not in (*CATALOGUE, "pipeline"):
                        problems.append(
                            Problem("parity", wf.name, call.line, f"`python -m tasks {name}`: no such stage")
                        )
                    if name not in called:
                        called.append(name)
        runs[wf.name] = called
    if ci is None:
        problems.append(Problem("parity", f"{WORKFLOW_DIR}/{ci_name}", 0, "the CI workflow is missing"))
        return problems, runs
    ci_runs = set(runs[ci.name])
    if "pipeline" in ci_runs:
        ci_runs |= set(PIPELINE)
    for stage in required_in_ci:
        if stage not in ci_runs:
            problems.append(Problem("parity", ci.name, 0, f"stage '{stage}' is not run by any job (`nox -s {stage}`)"))
    return problems, runs


# --- pins and hardening -------------------------------------------------------------------


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


# --- the tools ----------------------------------------------------------------------------


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
        Problem("actionlint", _rel(ctx.root, e.get("filepath", "")), int(e.get("line", 0)), _actionlint_message(e))
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
    return Problem("zizmor", _rel(root, path), int(row) + 1, f"{message} [{severity}]")


def _rel(root: Path, path: str) -> str:
    p = Path(path)
    if p.is_absolute() and p.is_relative_to(root):
        return str(p.relative_to(root))
    return path


# --- the stage ----------------------------------------------------------------------------


def check(ctx: Context, rec: StageRecord) -> tuple[list[Problem], dict[str, Any]]:
    """All four checks over ctx.root; the problems, and a JSON-able summary."""
    out_dir = ctx.stage_dir("workflows")
    workflows = load_workflows(ctx.root)
    if rec is not None:
        for wf in workflows:
            rec.add_input(wf.path, YAML)
    sessions = available_sessions(ctx.root)
    required = required_in_ci()
    parity_problems, runs = parity(workflows, sessions, required)
    ci = next((w for w in workflows if w.path.name == CI_WORKFLOW), None)
    github_files = sorted(p for p in ctx.inside(".github").rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    suppression_problems, suppressed = suppressions(
        (_rel(ctx.root, str(p)), p.read_text(encoding="utf-8")) for p in github_files
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
    if rec is not None:
        rec.add_output(result, JSON)
    return problems, summary


def reason(problems: Sequence[Problem]) -> str:
    """One line naming each distinct problem once, with every place it occurs."""
    places: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        places.setdefault((p.check, p.message), []).append(f"{p.file}:{p.line}" if p.line else p.file)
    return "; ".join(f"[{check}] {message} ({', '.join(where)})" for (check, message), where in places.items())
