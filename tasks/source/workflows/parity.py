"""Session parity: every nox call in a workflow names a session that exists, and ci.yml runs every required stage."""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path

from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.core.errors import InputError
from tasks.source.workflows.model import (
    CI_WORKFLOW,
    WORKFLOW_DIR,
    NoxCall,
    Problem,
    Workflow,
)

COMMAND_PREFIXES = frozenset({"exec", "env", "time", "sudo", "command"})


SESSION_FLAGS = ("-s", "-e", "--session", "--sessions")


SHELL_STOP = frozenset({"&&", "||", ";", "|", "&", ">", ">>", "<", "<<", "(", ")", "2>", "2>>"})


def required_in_ci() -> tuple[str, ...]:
    """The default pipeline's stages, then the extras, each once."""
    return tuple(dict.fromkeys((*PIPELINE, *REQUIRED_IN_CI_EXTRA)))


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


# Stages ci.yml must run besides the default pipeline (tasks.catalogue.PIPELINE).
REQUIRED_IN_CI_EXTRA: tuple[str, ...] = ("policy", "verify")
