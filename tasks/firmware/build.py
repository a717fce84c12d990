"""One firmware build, in order: inputs -> U-Boot -> kernel, tpm_tis.ko, busybox -> QEMU's device tree
-> initramfs -> signed FIT -> control DTB -> reference values. Everything lands in ``out`` atomically.

Intermediate files live in a work directory inside ``out`` that is removed at the end; the
outputs are the blobs later stages pick up by media type and digest (stages/firmware.py records
them), and the reference values are computed here, from those very files.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic
from tasks.core.evidence import StageRecord
from tasks.firmware import fit, keys, measurements, qemu, rootfs, sources, u_boot

FIT_NAME = "image.fit"
U_BOOT_NAME = "u-boot.bin"
CONTROL_DTB_NAME = "control.dtb"
INITRAMFS_NAME = fit.PAYLOAD["ramdisk"]
ITS_NAME = "image.its"
REFERENCE_NAME = "reference-values.json"
REFERENCE_BUNDLE_NAME = "reference-values.sigstore.json"  # the signed statement (stages/firmware.py signs it)


@dataclass(frozen=True)
class Firmware:
    """The outputs of one build (paths inside ``out``) and what they were made from."""

    out: Path
    release: fit.Release
    epoch: int
    u_boot: u_boot.UBoot
    kernel: sources.Kernel
    reference: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.out / name


class Clock:
    """Wall time per step, for the evidence and bench/firmware.py."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t0 = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._t0, 3)
        self._t0 = now


def build_firmware(
    ctx: Context,
    rec: StageRecord,
    out: Path,
    *,
    epoch: int,
    rebuild_u_boot: bool = False,
    release: fit.Release | None = None,
) -> Firmware:
    """The signed build of firmware/release.toml's release (or ``release``: the lifecycle's next one)."""
    clock = Clock()
    if release is None:
        release_file = ctx.inside(fit.RELEASE)
        rec.add_input(release_file, "application/toml")
        release = fit.parse_release(release_file.read_text())
    boot_loader = u_boot.build(ctx, rec, rebuild=rebuild_u_boot)
    clock.lap("u-boot")
    kernel = sources.kernel(ctx, rec)
    userland = rootfs.Userland(
        busybox=sources.busybox(ctx, rec).read_bytes(),
        modules={
            "tpm_tis_core.ko": kernel.tpm_tis_core.read_bytes(),
            "tpm_tis.ko": rootfs.tpm_tis_module(ctx, rec, kernel).read_bytes(),
        },
        release={"FIRMWARE_VERSION": release.version, "SECURITY_VERSION": str(release.security_version)},
    )
    kernel_gz = fit.compressed_kernel(kernel.image)
    clock.lap("kernel, modules, busybox")
    keydir = keys.key_dir(ctx)
    keys.signing_key(ctx, rec, keydir)
    template = ctx.inside(fit.TEMPLATE)
    rec.add_input(template, "text/plain")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as tmp:
        work = Path(tmp)
        dumped = qemu.dump_dtb(ctx, rec, boot_loader.binary, work / "qemu-virt.dtb")
        base, _ = fit.device_trees(ctx, rec, dumped, work)
        clock.lap("device tree")
        entries = rootfs.initramfs_entries(rootfs.recipe_files(ctx, rec), userland)
        atomic.write_bytes(work / fit.PAYLOAD["ramdisk"], rootfs.initramfs(entries, epoch))
        (work / fit.PAYLOAD["kernel"]).symlink_to(kernel_gz)
        its = work / ITS_NAME
        atomic.write_text(its, fit.render_its(template.read_text(), release, kernel.release))
        signed = fit.sign(ctx, rec, its, work / FIT_NAME, keydir=keydir, epoch=epoch)
        control = fit.control_dtb(
            ctx,
            rec,
            base,
            its,
            work / CONTROL_DTB_NAME,
            keydir=keydir,
            minimum=release.min_security_version,
            epoch=epoch,
        )
        clock.lap("initramfs, FIT, control DTB")
        reference = measurements.reference_values(
            signed.read_bytes(), control.read_bytes(), release.version, release.security_version, release.hardware_model
        )
        atomic.write_json(work / REFERENCE_NAME, reference)
        atomic.write_bytes(work / U_BOOT_NAME, boot_loader.binary.read_bytes())
        for name in (FIT_NAME, U_BOOT_NAME, CONTROL_DTB_NAME, INITRAMFS_NAME, ITS_NAME, REFERENCE_NAME):
            os.replace(work / name, out / name)
    return Firmware(out, release, epoch, boot_loader, kernel, reference, clock.seconds)
