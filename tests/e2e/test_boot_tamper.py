"""The tamper matrix on the real device: U-Boot in QEMU with swtpm, against one signed build.

Each case is built from the genuine firmware by `nox -s boot -- --tamper <case>`, booted cold,
and must be caught the way the table in README.md says: refused before a kernel starts with
the reason U-Boot (or our boot command) prints, or, for keyless-uboot, booted and visible in
PCR 8 and 9. The stage passes only when that was observed.
"""

from __future__ import annotations

import json

import pytest

from tasks.core.media_types import FIT_MEDIA_TYPE
from tasks.firmware import measurements
from tests.support.firmware_build import FirmwareProject

pytestmark = pytest.mark.slow

REFUSED = {
    "flipped-byte": "Bad hash value for 'hash-1' hash node in 'kernel-1' image node",
    "unsigned": "Failed to verify required signature 'key-secure-iot-fw'",
    "other-key": "Verification failed for '<NULL>' hash node in 'conf-1' config node",
    "mix-and-match": "Verification failed for '<NULL>' hash node in 'conf-1' config node",
    "rollback": "secure-iot: refused: security version 0x00000001 below minimum 0x00000002",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_each_attack_is_refused_before_a_kernel_starts(firmware: FirmwareProject, case: str) -> None:
    result = firmware.run("boot", "--tamper", case)
    assert result.returncode == 0, result.output[-3000:]
    record = firmware.stage("boot")
    assert record["details"]["mode"] == f"tamper:{case}"
    assert record["details"]["refusal"]["line"] == REFUSED[case]
    assert (
        "userland" not in record["details"]["milestones_s"]
        and "starting-kernel" not in record["details"]["milestones_s"]
    )
    report = json.loads((firmware.out / "boot" / "tamper" / case / "report.json").read_text())
    assert report["passed"] and all(c["passed"] for c in report["checks"])
    console = (firmware.out / "boot" / "tamper" / case / "console.log").read_text()
    assert REFUSED[case] in console and "Starting kernel" not in console


def test_a_replaced_boot_loader_boots_but_shows_in_pcr_8_and_9(firmware: FirmwareProject) -> None:
    result = firmware.run("boot", "--tamper", "keyless-uboot")
    assert result.returncode == 0, result.output[-3000:]
    details = firmware.stage("boot")["details"]
    assert "userland" in details["milestones_s"]
    assert details["pcrs"]["8"] == details["pcrs"]["9"] == measurements.ZERO  # the stock U-Boot measures nothing
    assert (
        "secure-iot: measured boot"
        not in (firmware.out / "boot" / "tamper" / "keyless-uboot" / "console.log").read_text()
    )


def test_the_tamper_cases_left_the_genuine_firmware_as_it_was(firmware: FirmwareProject) -> None:
    """They work on copies under out/boot/tamper/: the genuine build still boots, unchanged."""
    before = firmware.output("firmware", FIT_MEDIA_TYPE).read_bytes()
    result = firmware.run("boot")
    assert result.returncode == 0, result.output[-3000:]
    assert firmware.output("firmware", FIT_MEDIA_TYPE).read_bytes() == before
    assert firmware.stage("boot")["details"]["mode"] == "genuine"
