"""Shared fixtures: a throwaway project root, and running `python -m tasks` for real."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support.project import REPO

# Property tests (Hypothesis) are reproducible: the same examples on every run and machine, and no
# example database written into the work tree. HYPOTHESIS_PROFILE=explore searches with fresh seeds.
settings.register_profile("reproducible", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


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
    """One signed, attested image on its own loopback registry for the whole session (tests/support/chain.py)."""
    from tests.support.chain import signed_chain

    yield from signed_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One signed firmware build for the whole session (tests/support/firmware_build.py)."""
    from tests.support.firmware_build import built_firmware

    return built_firmware(tmp_path_factory.mktemp("firmware"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL (Debian's, tools.lock) on 127.0.0.1, started once per session (tests/support/postgres.py)."""
    from tests.support.postgres import running_postgres

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
    from tests.support.postgres import fresh_database

    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url
