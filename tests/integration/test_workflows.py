"""The workflows gate: session parity, SHA pins and hardening in Python; actionlint and zizmor
run for real on the project's workflows and on a deliberately bad one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.source import workflows as wf
from tests.support.project import REPO, run_tasks

CHECKOUT = "actions/checkout@8e8c483db84b4bee98b60c0593521ed34d9990e8 # v6.0.1"
REQUIRED = wf.required_in_ci()

GOOD_CI = f"""\
name: ci
on:
  push:
permissions: {{}}
concurrency:
  group: ci-${{{{ github.ref }}}}
  cancel-in-progress: true
jobs:
  pipeline:
    name: pipeline
    runs-on: ubuntu-24.04
    timeout-minutes: 30
    permissions:
      contents: read # checkout
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - run: ./bootstrap.sh nox -s {" ".join(REQUIRED)}
"""

BAD = """\
on:
  pull_request:
jobs:
  greet:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def workflow(tmp_path: Path, text: str, name: str = "ci.yml") -> wf.Workflow:
    directory = tmp_path / ".github" / "workflows"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return wf.load_workflow(path, tmp_path)


def real_sessions() -> set[str]:
    return wf.available_sessions(REPO)


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sessions"),
    [
        ("nox -s a b c", ["a", "b", "c"]),
        ("nox -s a -s b", ["a", "b"]),
        ("./bootstrap.sh nox -s tests -- -k parity", ["tests"]),
        ("./bootstrap.sh nox --stop-on-first-error -s build sign", ["build", "sign"]),
        ('./bootstrap.sh nox -s summary >> "$GITHUB_STEP_SUMMARY"', ["summary"]),
        ("nox --sessions lint tests && echo done", ["lint", "tests"]),
        ("./bootstrap.sh nox", ["pipeline"]),
        ("./bootstrap.sh nox -s build \\\n  sbom", ["build", "sbom"]),
        ('python -m tasks summary >> "$GITHUB_STEP_SUMMARY"', ["summary"]),
        ("echo nothing to see  # nox -s commented", []),
        ("python -m pip install nox && echo 'nox -s quoted'", []),
        ("cd app; exec nox -s lint", ["lint"]),
    ],
)
def test_nox_calls_finds_every_session_form(script: str, sessions: list[str]) -> None:
    assert [s for call in wf.nox_calls(script, 1) for s in call.sessions] == sessions


def test_noxfile_sessions_are_read_with_ast_without_running_nox(tmp_path: Path) -> None:
    noxfile = tmp_path / "noxfile.py"
    noxfile.write_text(
        "import nox\n\n@nox.session\ndef tests(session): ...\n\n"
        '@nox.session(venv_backend="none", name="fmt")\ndef format_(session): ...\n\n'
        "def helper(session): ...\n\nraise SystemExit('never executed')\n"
    )
    assert wf.noxfile_sessions(noxfile) == {"tests", "fmt"}


def test_required_stages_are_the_pipeline_plus_policy_and_verify_each_once() -> None:
    assert set(REQUIRED) == {*PIPELINE, "policy", "verify"}
    assert len(REQUIRED) == len(set(REQUIRED))


def test_real_sessions_are_the_catalogue_and_the_noxfile_extras() -> None:
    sessions = real_sessions()
    assert set(CATALOGUE) <= sessions
    assert {"pipeline", "tests", "lint", "lock"} <= sessions


# --- parity -------------------------------------------------------------------------------


def test_parity_passes_on_a_complete_ci(tmp_path: Path) -> None:
    problems, runs = wf.parity([workflow(tmp_path, GOOD_CI)], real_sessions(), REQUIRED)
    assert problems == []
    assert runs[".github/workflows/ci.yml"] == list(REQUIRED)


def test_parity_fails_on_a_nonexistent_session(tmp_path: Path) -> None:
    broken = GOOD_CI + "      - run: ./bootstrap.sh nox -s sast no-such-session\n"
    problems, _ = wf.parity([workflow(tmp_path, broken)], real_sessions(), REQUIRED)
    assert [p.check for p in problems] == ["parity"]
    assert "nox -s no-such-session" in problems[0].message
    assert problems[0].line == broken.splitlines().index("      - run: ./bootstrap.sh nox -s sast no-such-session") + 1


def test_parity_fails_on_a_nonexistent_session_in_any_workflow(tmp_path: Path) -> None:
    other = GOOD_CI.replace(f"nox -s {' '.join(REQUIRED)}", "nox -s tests -s typo")
    problems, _ = wf.parity(
        [workflow(tmp_path, GOOD_CI), workflow(tmp_path, other, "e2e.yml")], real_sessions(), REQUIRED
    )
    assert len(problems) == 1
    assert problems[0].file == ".github/workflows/e2e.yml"
    assert "typo" in problems[0].message


@pytest.mark.parametrize("missing", REQUIRED)
def test_parity_fails_when_ci_misses_a_required_stage(tmp_path: Path, missing: str) -> None:
    stages = " ".join(s for s in REQUIRED if s != missing)
    ci = GOOD_CI.replace(f"nox -s {' '.join(REQUIRED)}", f"nox -s {stages}")
    problems, _ = wf.parity([workflow(tmp_path, ci)], real_sessions(), REQUIRED)
    assert [p.message for p in problems] == [f"stage '{missing}' is not run by any job (`nox -s {missing}`)"]


def test_parity_counts_only_ci_yml_for_the_required_stages(tmp_path: Path) -> None:
    ci = GOOD_CI.replace(f"nox -s {' '.join(REQUIRED)}", "nox -s lint")
    elsewhere = workflow(tmp_path, GOOD_CI, "release.yml")  # runs everything, but is not ci.yml
    problems, _ = wf.parity([workflow(tmp_path, ci), elsewhere], real_sessions(), REQUIRED)
    assert {p.message.split("'")[1] for p in problems} == set(REQUIRED)


# --- pins, hardening, suppressions, ruleset -----------------------------------------------


def test_pins_accept_a_sha_with_its_version_comment(tmp_path: Path) -> None:
    assert wf.pins([workflow(tmp_path, GOOD_CI)]) == []


@pytest.mark.parametrize(
    ("uses", "expected"),
    [
        ("actions/checkout@v4", "pinned by tag or branch"),
        ("actions/checkout@main", "pinned by tag or branch"),
        ("actions/checkout@8e8c483db84b4bee98b60c0593521ed34d9990e8", "# vX.Y.Z"),
        ("actions/checkout@8e8c483 # v6.0.1", "pinned by tag or branch"),
        ("actions/checkout", "no ref at all"),
        ("docker://alpine:3", "docker:// action must be @sha256:"),
    ],
)
def test_pins_fail_on_tag_pinned_and_unpinned_actions(tmp_path: Path, uses: str, expected: str) -> None:
    problems = wf.pins([workflow(tmp_path, GOOD_CI.replace(CHECKOUT, uses))])
    assert len(problems) == 1
    assert expected in problems[0].message
    assert problems[0].line == 16


def test_pins_allow_only_the_listed_reusable_workflow_by_full_tag(tmp_path: Path) -> None:
    generator = next(iter(wf.TAG_PINNED_ALLOWED))
    assert wf.TAG_PINNED_ALLOWED[generator]  # every exception says why
    call = "jobs:\n  provenance:\n    uses: {}\n"
    assert wf.pins([workflow(tmp_path, call.format(f"{generator}@v2.1.0"))]) == []
    (short,) = wf.pins([workflow(tmp_path, call.format(f"{generator}@v2"))])
    assert "full vX.Y.Z tag" in short.message
    (other,) = wf.pins([workflow(tmp_path, call.format("someone/else/.github/workflows/x.yml@v1.0.0"))])
    assert "pin a full commit SHA" in other.message


def test_hardening_requires_permissions_concurrency_and_timeouts(tmp_path: Path) -> None:
    assert wf.hardening([workflow(tmp_path, GOOD_CI)]) == []
    loose = (
        GOOD_CI.replace("permissions: {}\n", "")
        .replace("    timeout-minutes: 30\n", "")
        .replace("  push:\n", "  pull_request_target:\n")
    )
    messages = {p.message for p in wf.hardening([workflow(tmp_path, loose)])}
    assert messages == {
        "top-level `permissions: {}` is required",
        "job 'pipeline' has no timeout-minutes",
        "pull_request_target runs untrusted code with secrets",
    }


def test_a_zizmor_suppression_needs_a_reason() -> None:
    text = (
        "a: 1 # zizmor: ignore[unpinned-uses] the generator verifies its own tag ref\n"
        "b: 2 # zizmor: ignore[template-injection]\n"
    )
    problems, found = wf.suppressions([("x.yml", text)])
    assert [p.line for p in problems] == [2]
    assert found[0]["reason"] == "the generator verifies its own tag ref"


def test_the_ruleset_requires_exactly_the_ci_jobs(tmp_path: Path) -> None:
    ci = workflow(tmp_path, GOOD_CI)
    rules = tmp_path / "main.json"
    checks = [{"context": "pipeline"}, {"context": "gone"}]
    rules.write_text(
        json.dumps({"rules": [{"type": "required_status_checks", "parameters": {"required_status_checks": checks}}]})
    )
    (problem,) = wf.ruleset(rules, ci, tmp_path)
    assert "'gone' is not a job of" in problem.message


# --- the real repository ------------------------------------------------------------------


def test_the_real_workflows_are_pinned_hardened_and_match_the_ruleset() -> None:
    workflows = wf.load_workflows(REPO)
    assert {w.path.name for w in workflows} >= {"ci.yml", "release.yml", "e2e.yml"}
    assert wf.pins(workflows) == []
    assert wf.hardening(workflows) == []
    ci = next(w for w in workflows if w.path.name == "ci.yml")
    assert wf.ruleset(REPO / wf.RULESET, ci, REPO) == []
    files = [(str(p), p.read_text()) for p in sorted((REPO / ".github").rglob("*.yml"))]
    problems, found = wf.suppressions(files)
    assert problems == []
    assert [f["rules"] for f in found] == ["unpinned-uses"]  # only the slsa generator's tag


def test_the_real_workflows_call_only_existing_sessions_and_ci_runs_every_stage() -> None:
    problems, runs = wf.parity(wf.load_workflows(REPO), real_sessions(), REQUIRED)
    assert problems == [], "\n".join(map(str, problems))
    assert set(REQUIRED) <= set(runs[".github/workflows/ci.yml"])


def test_actionlint_and_zizmor_find_nothing_in_the_real_workflows(tmp_path: Path) -> None:
    # the real .github/, results kept out of out/
    ctx = Context.create(root=REPO, out=tmp_path / "out").bind(StageRecord(stage="test", root=REPO))
    workflows = wf.load_workflows(REPO)
    out = ctx.stage_dir("workflows")
    rec = StageRecord(stage="workflows", root=ctx.root)
    assert wf.run_actionlint(ctx, rec, workflows, out / "actionlint.json") == []
    assert wf.run_zizmor(ctx, rec, out / "zizmor.json") == []
    assert json.loads((out / "zizmor.json").read_text()) == []


def test_actionlint_and_zizmor_report_a_deliberately_bad_workflow(project: Path) -> None:
    bad = workflow(project, BAD, "bad.yml")
    ctx = Context.create(root=project).bind(StageRecord(stage="test", root=project))
    out = ctx.stage_dir("workflows")

    rec = StageRecord(stage="workflows", root=ctx.root)
    actionlint = wf.run_actionlint(ctx, rec, [bad], out / "actionlint.json")
    assert any("github.event.pull_request.title" in p.message and p.line == 8 for p in actionlint)
    assert all(p.file == ".github/workflows/bad.yml" for p in actionlint)

    zizmor = {
        p.message.split(":")[0]
        for p in wf.run_zizmor(ctx, StageRecord(stage="workflows", root=ctx.root), out / "zizmor.json")
    }
    assert {"template-injection", "unpinned-uses", "artipacked", "excessive-permissions"} <= zizmor
    assert json.loads((out / "zizmor.json").read_text())  # the raw findings are kept as evidence

    assert wf.pins([bad])[0].message.startswith("actions/checkout@v4")
    assert {p.message for p in wf.hardening([bad])} >= {"top-level `permissions: {}` is required"}


def test_the_stage_records_its_verdict_and_outputs(project: Path) -> None:
    shutil.copy(REPO / "noxfile.py", project / "noxfile.py")
    ci = workflow(project, GOOD_CI)
    checks = [{"context": name} for name in sorted(wf.ci_check_names(ci))]
    ruleset = {"rules": [{"type": "required_status_checks", "parameters": {"required_status_checks": checks}}]}
    (project / ".github" / "rulesets").mkdir(parents=True)
    (project / ".github" / "rulesets" / "main.json").write_text(json.dumps(ruleset))
    passed = run_tasks("workflows", root=project)
    assert passed.returncode == 0, passed.output
    evidence = json.loads((project / "out" / "evidence.json").read_text())["stages"]["workflows"]
    assert evidence["verdict"] == "pass"
    assert {o["name"] for o in evidence["outputs"]} == {
        "out/workflows/actionlint.json",
        "out/workflows/zizmor.json",
        "out/workflows/workflows.json",
        "out/workflows/checks.json",
    }
    assert {"actionlint", "zizmor"} <= set(evidence["tools"])

    workflow(project, BAD, "bad.yml")
    failed = run_tasks("workflows", root=project)
    assert failed.returncode == 1, failed.output
    reason = json.loads((project / "out" / "evidence.json").read_text())["stages"]["workflows"]["reason"]
    for named in ("[actionlint]", "[zizmor] template-injection", "[pin] actions/checkout@v4", "[hardening]"):
        assert named in reason


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("run: ./bootstrap.sh nox -s verify", "run: ./bootstrap.sh nox -s verify || true"),
            "hides the gate's exit status",
        ),
        (
            lambda t: t.replace(
                "run: ./bootstrap.sh nox -s scan", "run: ./bootstrap.sh nox -s scan -- --allow-missing-db"
            ),
            "--allow-missing-db",
        ),
        (
            lambda t: t.replace("  supply-chain:\n", "  supply-chain:\n    continue-on-error: true\n"),
            "continue-on-error lets a gate fail silently",
        ),
        (
            lambda t: t.replace("      - name: nox -s sbom\n", "      - name: nox -s sbom\n        if: false\n"),
            "can skip the gate",
        ),
    ],
)
def test_ci_gates_must_be_able_to_fail_the_run(tmp_path: Path, edit: object, expected: str) -> None:
    text = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    changed = edit(text)  # type: ignore[operator]
    assert changed != text
    problems = wf.enforced(workflow(tmp_path, changed))
    assert any(expected in p.message for p in problems), problems
    assert wf.enforced(workflow(tmp_path, text, name="ci.yml")) == []


def test_a_missing_ruleset_is_a_problem(tmp_path: Path) -> None:
    problems = wf.ruleset(tmp_path / ".github" / "rulesets" / "main.json", None, tmp_path)
    assert [p.message for p in problems] == ["the branch ruleset (signed commits, required checks) is missing"]
