"""Console parsing and the checks over it, on real consoles of the reference device."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks.firmware import boot, console_log, tamper
from tasks.firmware.qemu import BootRun
from tests.support.project import REPO

FIXTURES = REPO / "tests" / "fixtures" / "firmware"


def parsed(name: str) -> console_log.BootReport:
    return console_log.parse(console_log.timed_lines((FIXTURES / f"{name}.console.log").read_text()))


@pytest.fixture
def reference() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "reference-values.json").read_text()))


def finished() -> BootRun:
    return BootRun(exit_code=0, seconds=3.5)


def test_a_genuine_boot_reports_its_milestones_measurements_and_pcrs(reference: dict[str, Any]) -> None:
    report = parsed("genuine")
    assert list(report.milestones) == [
        "u-boot",
        "fit-measured",
        "signature-verified",
        "starting-kernel",
        "userland",
        "agent-done",
        "poweroff",
    ]
    assert report.u_boot_digests == [e["digest"] for e in reference["event_log"]]
    assert report.signature == "sha256,rsa3072:secure-iot-fw"
    assert report.firmware == ("1.1.0", 2)
    assert sorted(report.pcrs) == list(range(10))
    assert not report.refusals and not report.refused and report.reached_userland


def test_genuine_checks_pass_on_a_genuine_boot_only(reference: dict[str, Any]) -> None:
    good = boot.genuine_checks(finished(), parsed("genuine"), reference, 120)
    assert all(c.passed for c in good), [c for c in good if not c.passed]
    bad = {c.name for c in boot.genuine_checks(finished(), parsed("keyless-uboot"), reference, 120) if not c.passed}
    assert {"PCR 8 equals the reference value", "PCR 9 equals the reference value"} <= bad
    assert "U-Boot measured the key and the FIT (PCR 8, 9)" in bad
    assert "signature verified with the required key" in bad


def test_a_timeout_fails_the_boot(reference: dict[str, Any]) -> None:
    checks = boot.genuine_checks(BootRun(timed_out=True), parsed("genuine"), reference, 120)
    assert [c.name for c in checks if not c.passed] == ["device powered off by itself"]


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("rollback", "secure-iot: refused: security version 0x00000001 below minimum 0x00000002"),
        ("other-key", "Verification failed for '<NULL>' hash node in 'conf-1' config node"),
        ("flipped-byte", "Bad hash value for 'hash-1' hash node in 'kernel-1' image node"),
    ],
)
def test_a_refusal_is_the_first_line_u_boot_printed(name: str, first: str) -> None:
    report = parsed(name)
    assert report.refused and report.reason == first
    assert "starting-kernel" not in report.milestones and not report.pcrs


@pytest.mark.parametrize("case", ["rollback", "other-key", "flipped-byte", "keyless-uboot"])
def test_each_tamper_case_holds_on_its_own_console(case: str, reference: dict[str, Any]) -> None:
    checks = tamper.tamper_checks(tamper.CASES[case], finished(), parsed(case), reference)
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]


@pytest.mark.parametrize("case", sorted(tamper.CASES))
def test_no_tamper_case_passes_on_a_genuine_boot(case: str, reference: dict[str, Any]) -> None:
    """The negative control: a case that was not caught must fail, never pass by default."""
    checks = tamper.tamper_checks(tamper.CASES[case], finished(), parsed("genuine"), reference)
    assert any(not c.passed for c in checks)


def test_a_refusal_for_another_reason_does_not_count() -> None:
    """rollback's console is a refusal, but not the signature refusal other-key must show."""
    checks = tamper.tamper_checks(tamper.CASES["other-key"], finished(), parsed("rollback"), {})
    assert [c.passed for c in checks] == [True, False, True, True]


def test_timed_lines_read_back_what_the_boot_wrote() -> None:
    assert console_log.timed_lines("[   0.111] U-Boot 2023.01\n[  12.500] \nnoise\n") == [
        (0.111, "U-Boot 2023.01"),
        (12.5, ""),
    ]
