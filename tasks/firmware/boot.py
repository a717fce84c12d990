"""Boot the reference device and judge what it showed: verified, measured, PCRs equal the reference values.

The console is the evidence (written to the stage's directory, one line per record with the
seconds since QEMU started); the device agent's PCR lines are compared with the reference
values the firmware stage computed from the signed files, and U-Boot's own printed digests with
the reference event log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic
from tasks.core.checks import Check
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.firmware import console_log, measurements, qemu, slots
from tasks.firmware.console_log import BootReport
from tasks.firmware.measurements import KEY_NAME

SIGNATURE = f"sha256,rsa3072:{KEY_NAME}"


def cold_boot(
    ctx: Context, rec: StageRecord, device: qemu.Device, console: Path, *, timeout: float
) -> tuple[qemu.BootRun, BootReport]:
    """One cold boot; the console (timestamped) is written to ``console``, the raw capture removed.

    A device given only a FIT gets a fresh slot disk beside the console with the FIT in slot A.
    """
    device = with_slot_disk(ctx, rec, device, console.with_name("slots.img"))
    raw = console.with_name(console.name + ".raw")
    run = qemu.boot(ctx, rec, device, raw, timeout=timeout)
    atomic.write_text(console, "".join(f"[{t:8.3f}] {line}\n" for t, line in run.lines))
    raw.unlink(missing_ok=True)
    rec.details.setdefault("processes", []).append(
        {"console": console.name, "pids": run.pids, "stopped": run.stopped, "exit_code": run.exit_code}
        | {"seconds": run.seconds, "timed_out": run.timed_out}
    )
    return run, console_log.parse(run.lines)


def with_slot_disk(ctx: Context, rec: StageRecord, device: qemu.Device, disk: Path) -> qemu.Device:
    """The device as it boots: a device given only a FIT gets a fresh slot disk at ``disk`` with the FIT
    in slot A (every boot reads its FIT from a slot; a device without one is refused by U-Boot)."""
    if device.disk is not None or device.fit is None:
        return device
    made = slots.Disk.create(disk, env_tools(ctx), rec, device.fit)
    return qemu.Device(device.bios, device.dtb, device.fit, made.path)


def env_tools(ctx: Context) -> slots.EnvTools:
    return slots.EnvTools(ctx.tool("mkenvimage"), ctx.tool("fw_setenv"), ctx.tool("fw_printenv"))


def finished(run: qemu.BootRun, timeout: float) -> Check:
    detail = (
        f"no power-off within {timeout:.0f} s; QEMU stopped by PID"
        if run.timed_out
        else f"QEMU exited {run.exit_code} after {run.seconds:.2f} s"
    )
    return Check("device powered off by itself", not run.timed_out, detail)


def pcr_checks(report: BootReport, reference: Mapping[str, Any]) -> list[Check]:
    """The measured PCRs (8, 9) against the reference values, and 0-7 (nothing else may have measured)."""
    expected = measurements.expected(reference)
    differs = measurements.differences(report.pcrs, reference)
    checks = [
        Check(f"PCR {i} equals the reference value", i not in differs, report.pcrs.get(i, "not reported"), expected[i])
        for i in measurements.MEASURED_PCRS
    ]
    others = [i for i in differs if i not in measurements.MEASURED_PCRS]
    shown = ", ".join(f"PCR {i}: {differs[i]}" for i in others) or "PCRs 0-7 all zero, as expected"
    checks.append(Check("no unexplained measurement (PCRs 0-7)", not others, shown))
    return checks


def genuine_checks(run: qemu.BootRun, report: BootReport, reference: Mapping[str, Any], timeout: float) -> list[Check]:
    milestones = report.milestones
    version = (str(reference.get("firmware_version")), int(reference.get("security_version", -1)))
    return [
        finished(run, timeout),
        Check("U-Boot did not refuse", not report.refusals, report.reason or "no refusal line"),
        Check(
            f"U-Boot measured the key and the FIT (PCR {measurements.KEY_PCR}, {measurements.FIT_PCR})",
            report.u_boot_digests == measurements.event_digests(reference),
            ", ".join(report.u_boot_digests) or "no digest printed",
            "the reference event log",
        ),
        Check(
            "signature verified with the required key",
            report.signature == SIGNATURE,
            f"{report.signature or 'no verified signature'} at {milestones.get('signature-verified', '-')} s",
            SIGNATURE,
        ),
        Check("userland reached", report.reached_userland, f"at {milestones.get('userland', '-')} s"),
        Check(
            "firmware and security version booted",
            report.firmware == version,
            f"{report.firmware[0]} / {report.firmware[1]}" if report.firmware else "not reported by the agent",
            f"{version[0]} / {version[1]}",
        ),
        *pcr_checks(report, reference),
        Check("device agent reported no error", not report.agent_errors, "; ".join(report.agent_errors) or "none"),
    ]


@dataclass(frozen=True)
class SlotBoot:
    """One power cycle of an A/B device: the slot U-Boot chose and whether it came up healthy."""

    slot: str
    run: qemu.BootRun
    report: BootReport
    checks: list[Check]

    @property
    def healthy(self) -> bool:
        return bool(self.slot) and all(c.passed for c in self.checks)


def boot_slot(
    ctx: Context,
    rec: StageRecord,
    device: qemu.Device,
    console: Path,
    *,
    references: Mapping[str, Mapping[str, Any]],
    timeout: float,
) -> SlotBoot:
    """Cold-boot the slot disk's device; healthy = the genuine checks against the reference values of
    the FIT in the slot U-Boot chose (verified, measured as expected, userland up, version booted)."""
    if device.disk is None:
        raise InputError("an A/B boot needs the device's slot disk")
    run, report = cold_boot(ctx, rec, device, console, timeout=timeout)
    reference = references.get(report.slot)
    if reference is None:
        chose = f"slot {report.slot}" if report.slot else report.reason or "no slot"
        return SlotBoot(report.slot, run, report, [Check("U-Boot booted a slot with reference values", False, chose)])
    return SlotBoot(report.slot, run, report, genuine_checks(run, report, reference, timeout))
