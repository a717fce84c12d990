"""nox sessions: one per pipeline stage, each a thin call into `python -m tasks`.

`nox` alone runs the whole pipeline (PIPELINE in tasks/catalogue.py). Every session
installs Python dependencies from the hash-locked requirements/lock.txt only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tasks.catalogue import CATALOGUE

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["pipeline"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

LOCK = "requirements/lock.txt"


def _install(session: nox.Session) -> None:
    session.install("--require-hashes", "--no-deps", "-r", LOCK)


def _stage(name: str, doc: str) -> None:
    def session_func(session: nox.Session) -> None:
        _install(session)
        session.run("python", "-m", "tasks", name, *session.posargs)

    session_func.__doc__ = doc
    nox.session(name=name)(session_func)


for _name, _entry in CATALOGUE.items():
    _stage(_name, f"Talk {_entry.talk_section}: {_entry.proves}.")


@nox.session
def pipeline(session: nox.Session) -> None:
    """The whole pipeline in order, ending with a summary table (the default session)."""
    _install(session)
    session.run("python", "-m", "tasks", "pipeline", *session.posargs)


@nox.session
def device(session: nox.Session) -> None:
    """The device profile: keys, firmware, its supply chain (`--subject firmware`), boot (tasks/catalogue.py)."""
    _install(session)
    session.run("python", "-m", "tasks", "pipeline", "device", *session.posargs)


@nox.session
def summary(session: nox.Session) -> None:
    """Markdown summary of out/evidence.json (CI appends it to $GITHUB_STEP_SUMMARY)."""
    _install(session)
    session.run("python", "-m", "tasks", "summary", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """pytest: unit tests and integration tests against the real tools."""
    _install(session)
    session.run("python", "-m", "tasks", "tools")  # the integration tests drive the pinned tools
    session.run("python", "-m", "tasks", "tools", "--profile", "cluster")  # and the local control plane
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), mypy --strict (tasks/, noxfile.py, tests/, bench/), import layers."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")


@nox.session(name="fresh-machine", venv_backend="none")
def fresh_machine(session: nox.Session) -> None:
    """The README's Quickstart in a fresh Debian bookworm root, timed per command (bench/fresh_machine.py).

    Slow (a cold Go build of the tools inside: 20-35 min on 2 cores) and needs root (mmdebstrap,
    unshare, chroot); not part of `nox -s tests`. Options after `--`, e.g. `-- --keep-root`.
    """
    session.run(sys.executable, "bench/fresh_machine.py", *session.posargs)


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """Re-resolve requirements/*.in into hash-locked requirements/*.txt (uv pip compile)."""
    compile_ = ["uv", "pip", "compile", "--quiet", "--generate-hashes", "--python-version", "3.11", "--no-header"]
    session.run(*compile_, "requirements/bootstrap.in", "-o", "requirements/bootstrap.txt", *session.posargs)
    session.run(*compile_, "app/requirements.in", "-o", "app/requirements.lock", *session.posargs)
    for tool_in in sorted(Path("requirements/tools").glob("*.in")):  # one isolated venv per wheel tool
        session.run(*compile_, str(tool_in), "-o", str(tool_in.with_suffix(".txt")), *session.posargs)
    session.run(*compile_, "requirements/dev.in", "-c", "app/requirements.lock", "-o", LOCK, *session.posargs)
