"""`python -m tasks attest` fails closed, with one actionable line, when the signed firmware is missing.

The whole story (3 devices, real QEMU boots, register, re-attest, tampered boot, quarantine) takes
about 40 s on top of a firmware build; it runs as `nox -s keys firmware attest` (README), and its
parts are tested in tests/e2e/test_reattestation.py and tests/e2e/test_registration_boot.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.project import run_tasks


def test_attest_without_the_signed_firmware_fails_closed(project: Path) -> None:
    out = project / "out"
    result = run_tasks("attest", root=project, env={"SECURE_IOT_OUT": str(out)})
    assert result.returncode != 0
    assert "firmware" in result.output, result.output[-2000:]
    assert not (out / "attest" / "factory").exists()  # nothing manufactured, nothing booted
