"""Shared fixtures: a throwaway project root, and running `python -m tasks` for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks.core.evidence import StageRecord

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_tasks(*args: str, root: Path, env: dict[str, str] | None = None, timeout: float = 600) -> Result:
    """Run the real CLI as a user would, against ``root`` as the project."""
    full_env = {
        **os.environ,
        "SECURE_IOT_ROOT": str(root),
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
        "SECURE_IOT_FORCE": "1",  # tests drive a stage's logic: always run it (tests/unit/pipeline test skipping)
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def pinned(name: str) -> Path:
    """The pinned tool's binary, resolved (and installed if needed) through tools.lock."""
    from tasks import toolchain

    return toolchain.resolve(name, REPO, StageRecord(stage="tools", root=REPO)).path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A minimal project root (a git work tree): the real policy, schema-validated, and the real semgrep rules."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "security-policy.yaml", root / "security-policy.yaml")
    shutil.copytree(REPO / ".semgrep", root / ".semgrep")
    shutil.copy(REPO / "tools.lock", root / "tools.lock")  # the same pins, so the same cached tools
    shutil.copytree(REPO / "requirements" / "tools", root / "requirements" / "tools")
    (root / "app" / "src" / "demo").mkdir(parents=True)
    (root / "app" / "src" / "demo" / "__init__.py").write_text('"""demo app."""\n')
    (root / "tasks").mkdir()
    (root / "tasks" / "__init__.py").write_text("")
    (root / "noxfile.py").write_text('"""noxfile."""\n')
    # a git work tree: the SAST scope is every file git knows (new files count before `git add`)
    subprocess.run(["git", "init", "-q", root], check=True)
    return root


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One signed, attested image on its own loopback registry for the whole session (tests/chain.py)."""
    from tests.chain import signed_chain

    yield from signed_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One signed firmware build for the whole session (tests/firmware_build.py)."""
    from tests.firmware_build import built_firmware

    return built_firmware(tmp_path_factory.mktemp("firmware"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL (Debian's, tools.lock) on 127.0.0.1, started once per session (tests/postgres.py)."""
    from tests.postgres import running_postgres

    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The fleet server's database URL, once per backend: a SQLite file, and a fresh PostgreSQL database."""
    from secure_iot_server.database import dispose_engines

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'devices.db'}"
        dispose_engines()
        return
    from tests.postgres import fresh_database

    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url
