"""`nox -s keys firmware attest`, the README's field story, run as a user runs it, on real parts.

The firmware fixture is the project after `keys` and `firmware`; the stage then manufactures
three devices, boots one in QEMU against its own swtpm (from a slot disk, as every boot since the
A/B change), registers it with the fleet server over mTLS, re-attests after a reboot, and
quarantines it after a tampered boot. A seam between the stage and the boot path (a device built
without a slot disk, a key policy the server does not accept) fails here, not only on a user's
machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.project import REPO

pytestmark = pytest.mark.slow


def test_attest_runs_the_whole_story_to_a_pass(firmware: Any, tmp_path: Path) -> None:
    project = firmware.copy(tmp_path / "project")
    shutil.copytree(REPO / "app" / "src", project.root / "app" / "src")  # the fleet server it starts
    result = project.run("attest", timeout=900)
    assert result.returncode == 0, result.output[-6000:]
    report = json.loads((project.out / "attest" / "report.json").read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert report["passed"] and not failed, failed
    assert len(report["checks"]) == 7, report["checks"]
    story = project.stage("attest")["details"]["attest"]
    quarantined = story["operator_view"]
    assert quarantined["state"] == "quarantined", quarantined
