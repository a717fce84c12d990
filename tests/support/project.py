"""The project under test: its root, and running `python -m tasks` and the pinned tools for real."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tasks.core.evidence import StageRecord

REPO = Path(__file__).resolve().parents[2]


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
