"""`nox -s keys firmware lifecycle`: one device through update, rollback, quarantine and release, on real
parts (U-Boot in QEMU from the slot disk, swtpm, tpm2-tools, the fleet server process over TLS, the
OTA repository over mTLS with the fleet CA's CRL, TUF + RAUC).

The firmware fixture is the project after `keys` and `firmware`; the stage builds N+1 itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.project import REPO

pytestmark = pytest.mark.slow


def test_the_lifecycle_holds_together(firmware: Any, tmp_path: Path) -> None:
    project = firmware.copy(tmp_path / "project")
    shutil.copytree(REPO / "app" / "src", project.root / "app" / "src")  # the fleet server it starts
    shutil.copytree(REPO / "infra" / "ota", project.root / "infra" / "ota")  # the repository's models
    result = project.run("lifecycle", timeout=1800)
    report = json.loads((project.out / "lifecycle" / "report.json").read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert result.returncode == 0 and not failed, (failed, result.output[-4000:])
    names = [c["name"] for c in report["checks"]]
    assert len(names) == 13, names
    assert any(name.startswith("rollback: the server refuses") for name in names)
    assert report["repository_refused_after_s"] < 15
    assert [r["note"] for r in report["releases"]] == ["re-flashed with N+1 (lifecycle)"]
