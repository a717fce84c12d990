"""The tamper cases: each changes the genuine firmware the way an attacker would, then boots it cold.

Five must be refused before a kernel starts, with the reason U-Boot prints; the sixth
(keyless-uboot) cannot be refused by the device, because the boot loader itself is replaced,
so it must boot and show in the measurements. Older releases (rollback, mix-and-match) are made
by re-signing the genuine FIT as an earlier version with the firmware key: they stand for a
genuinely signed old release an attacker kept.
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.checks import Check
from tasks.core.errors import InputError, VerificationError
from tasks.core.evidence import StageRecord
from tasks.firmware import fdt, fit, keys, measurements, qemu
from tasks.firmware.console_log import BootReport

STOCK_U_BOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"  # Debian's u-boot-qemu: no key, measures nothing
KERNEL = "/images/kernel-1"
CONF = "/configurations/conf-1"


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    expect: Literal["refused", "detected"]
    by: str  # who refuses (or detects) it
    reason: str = ""  # a pattern the refusal must match, for refused cases


CASES = {
    c.name: c
    for c in (
        Case(
            "flipped-byte",
            "one byte of the signed kernel flipped after signing",
            "refused",
            "U-Boot bootm: the kernel's hash in the signed configuration",
            r"Bad hash value for 'hash-1' hash node in 'kernel-1' image node",
        ),
        Case(
            "unsigned",
            "the FIT without its configuration signature",
            "refused",
            "U-Boot: the control DTB requires a signature by the firmware key",
            r"Failed to verify required signature 'key-secure-iot-fw'",
        ),
        Case(
            "other-key",
            "the FIT re-signed with another RSA-3072 key of the same name",
            "refused",
            "U-Boot: the signature does not verify with the required key",
            r"Failed to verify required signature 'key-secure-iot-fw'",
        ),
        Case(
            "mix-and-match",
            "an older signed release's kernel (data and hash node) inside this release's signed configuration",
            "refused",
            "U-Boot: the configuration signature covers the images' hash nodes",
            r"Failed to verify required signature 'key-secure-iot-fw'",
        ),
        Case(
            "rollback",
            "an older release, validly signed, whose security version is below the control DTB's minimum",
            "refused",
            "U-Boot's boot command (secure-iot policy in the fragment), before the FIT is measured",
            r"secure-iot: refused: security version \S+ below minimum \S+",
        ),
        Case(
            "keyless-uboot",
            "Debian's stock U-Boot (no key, measures nothing) booting an unsigned FIT",
            "detected",
            "attestation (its boot loader was replaced, so the device cannot refuse)",
        ),
    )
}


def _editable(path: Path) -> fdt.Tree:
    """A FIT as a tree, refused unless it serializes back to the very same bytes."""
    blob = path.read_bytes()
    tree = fdt.parse(blob)
    if fdt.serialize(tree) != blob:
        raise VerificationError(f"{path}: the FDT writer does not round-trip it; a tamper case would be invalid")
    return tree


def flipped_byte(genuine: Path, out: Path) -> Path:
    tree = _editable(genuine)
    kernel = tree.root.find(KERNEL)
    data = bytearray(kernel.get("data"))
    data[len(data) // 2] ^= 0x01
    kernel.set("data", bytes(data))
    atomic.write_bytes(out, fdt.serialize(tree))
    return out


def unsigned(genuine: Path, out: Path) -> Path:
    tree = _editable(genuine)
    conf = tree.root.find(CONF)
    conf.children = [c for c in conf.children if not c.name.startswith("signature")]
    atomic.write_bytes(out, fdt.serialize(tree))
    return out


def older_release(
    ctx: Context, rec: StageRecord, genuine: Path, out: Path, *, minimum: int, keydir: Path, epoch: int
) -> Path:
    """The genuine FIT as release 0.9.0 with security version ``minimum - 1`` and other kernel bytes
    (the same Image, gzipped at level 1), re-signed with the firmware key by mkimage -F."""
    if minimum < 1:
        raise InputError("rollback needs a minimum security version of at least 1 in firmware/release.toml")
    tree = _editable(genuine)
    kernel = tree.root.find(KERNEL)
    kernel.set("data", gzip.compress(gzip.decompress(kernel.get("data")), compresslevel=1, mtime=0))
    atomic.write_bytes(out, fdt.serialize(tree))
    fdtput = ctx.tool("fdtput")
    runner.run(rec, fdtput, ["-t", "s", out, CONF, "firmware-version", "0.9.0"])
    runner.run(rec, fdtput, ["-t", "u", out, CONF, "security-version", str(minimum - 1)])
    return fit.resign(ctx, rec, out, keydir=keydir, epoch=epoch)


def mix_and_match(genuine: Path, older: Path, out: Path) -> Path:
    tree = _editable(genuine)
    theirs, ours = _editable(older).root.find(KERNEL), tree.root.find(KERNEL)
    if theirs.get("data") == ours.get("data"):
        raise VerificationError("the older release carries the same kernel bytes: mixing them would prove nothing")
    ours.set("data", theirs.get("data"))
    ours.child("hash-1").set("value", theirs.child("hash-1").get("value"))
    atomic.write_bytes(out, fdt.serialize(tree))
    return out


def keyless_dtb(ctx: Context, rec: StageRecord, control: Path, out: Path) -> Path:
    """QEMU's tree without any key, set up so that the stock U-Boot boots the FIT unattended."""
    shutil.copyfile(control, out)
    fdtput = ctx.tool("fdtput")
    runner.run(rec, fdtput, ["-r", out, "/signature"])
    runner.run(rec, fdtput, ["-t", "s", out, "/config", "bootcmd", f"bootm {qemu.FIT_ADDR:#x}#conf-1"])
    runner.run(rec, fdtput, ["-t", "i", out, "/config", "bootdelay", "0"])
    return out


@dataclass(frozen=True)
class Genuine:
    """The firmware stage's outputs, as the boot stage read them from the evidence."""

    fit: Path
    u_boot: Path
    control_dtb: Path
    reference: dict[str, Any]


def tampered_device(
    ctx: Context, rec: StageRecord, case: Case, genuine: Genuine, work: Path, *, epoch: int
) -> qemu.Device:
    """The device to boot for ``case``: which boot loader, control DTB and FIT."""
    work.mkdir(parents=True, exist_ok=True)
    bad = work / "image.fit"
    ours = qemu.Device(genuine.u_boot, genuine.control_dtb, bad)
    if case.name == "flipped-byte":
        flipped_byte(genuine.fit, bad)
    elif case.name == "unsigned":
        unsigned(genuine.fit, bad)
    elif case.name == "other-key":
        shutil.copyfile(genuine.fit, bad)
        attacker = keys.signing_key(ctx, rec, work / "attacker-key", subject="/CN=not the vendor")
        fit.resign(ctx, rec, bad, keydir=attacker.parent, epoch=epoch)
    elif case.name in ("rollback", "mix-and-match"):
        minimum = int(
            fdt.cell(
                fdt.parse(genuine.control_dtb.read_bytes()).root.find("/config"), "secure-iot,min-security-version"
            )
        )
        older = older_release(
            ctx, rec, genuine.fit, work / "older.fit", minimum=minimum, keydir=keys.key_dir(ctx), epoch=epoch
        )
        if case.name == "rollback":
            shutil.copyfile(older, bad)
        else:
            mix_and_match(genuine.fit, older, bad)
    elif case.name == "keyless-uboot":
        unsigned(genuine.fit, bad)
        stock = ctx.tool("qemu-system-aarch64").data_file(STOCK_U_BOOT)
        return qemu.Device(stock, keyless_dtb(ctx, rec, genuine.control_dtb, work / "keyless.dtb"), bad)
    else:
        raise InputError(f"--tamper {case.name}: unknown case (one of {', '.join(CASES)})")
    return ours


def tamper_checks(case: Case, run: qemu.BootRun, report: BootReport, reference: Mapping[str, Any]) -> list[Check]:
    """The case holds when the device refused it for its reason, or booted it and the PCRs show it."""
    if case.expect == "refused":
        first = f"{report.reason} (at {report.refusals[0][0]:.2f} s)" if report.refusals else "no refusal line"
        matched = [line for _, line in report.refusals if re.search(case.reason, line)]
        return [
            Check("refused before a kernel started", report.refused, first, "a refusal, no 'Starting kernel'"),
            Check(f"refused by {case.by}", bool(matched), matched[0] if matched else first, case.reason),
            Check(
                "no userland reached",
                not report.reached_userland,
                "userland reached" if report.reached_userland else "none",
            ),
            Check(
                "device powered off by itself",
                not run.timed_out,
                f"QEMU exited {run.exit_code} after {run.seconds:.2f} s",
            ),
        ]
    differs = measurements.differences(report.pcrs, reference)
    return [
        Check(
            "booted to userland (the device cannot refuse it)",
            report.reached_userland,
            f"at {report.milestones.get('userland', '-')} s",
        ),
        Check(
            f"detected by {case.by}",
            all(i in differs for i in measurements.MEASURED_PCRS),
            "; ".join(f"PCR {i}: {d}" for i, d in differs.items()) or "PCRs equal the reference values",
            f"PCR {measurements.KEY_PCR} and PCR {measurements.FIT_PCR} differ from the reference values",
        ),
    ]
