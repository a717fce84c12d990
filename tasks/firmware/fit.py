"""The FIT image and U-Boot's control DTB: device trees from QEMU, the .its rendered, mkimage signs.

conf-1 is signed (sha256,rsa3072) over kernel + fdt + ramdisk and carries the release's
firmware-version and security-version. The control DTB is QEMU's tree plus the required public
key and the minimum security version: in this emulation it plays the ROM/fuses, so whoever
chooses it chooses what U-Boot trusts. Reproducible: mkimage's timestamps come from
SOURCE_DATE_EPOCH and RSA PKCS#1 v1.5 signatures are deterministic.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import string
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import BuildError, InputError
from tasks.core.evidence import StageRecord
from tasks.firmware import fdt
from tasks.firmware.measurements import KEY_NAME

TEMPLATE = "firmware/fit/image.its.in"
RELEASE = "firmware/release.toml"
BOOTARGS = "console=ttyAMA0 rdinit=/init panic=-1"  # panic: reset (QEMU -no-reboot exits), never hang
MODEL_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")  # as the OTA repository names its per-model roles
SEEDS = ("kaslr-seed", "rng-seed")  # random on every QEMU start: removed for a reproducible FIT
# The .its names its data relative to itself: the rendered file says the same on every machine.
PAYLOAD = {"kernel": "kernel.gz", "fdt": "kernel.dtb", "ramdisk": "initramfs.cpio.gz"}


@dataclass(frozen=True)
class Release:
    version: str
    security_version: int
    min_security_version: int  # what the control DTB is provisioned with
    hardware_model: str  # the board this build is for: its reference values are judged only for this model


def parse_release(text: str, where: str = RELEASE) -> Release:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML: {exc}") from exc
    version = data.get("version")
    numbers = {k: data.get(k) for k in ("security_version", "min_security_version")}
    if not isinstance(version, str) or not version.strip() or any(c in version for c in ' "\\'):
        raise InputError(f"{where}: version: expected a plain version string like 1.2.0")
    for key, value in numbers.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
            raise InputError(f"{where}: {key}: expected an integer 0..2^32-1")
    model = data.get("hardware_model")
    if not isinstance(model, str) or not MODEL_ID.fullmatch(model):
        raise InputError(f"{where}: hardware_model: expected a model id like qemu-virt-a57 ([a-z0-9-], 1-64)")
    return Release(version, int(data["security_version"]), int(data["min_security_version"]), model)


def render_its(template: str, release: Release, kernel_release: str) -> str:
    """The image source for mkimage; every placeholder must be filled (a stray $ is an error)."""
    try:
        return string.Template(template).substitute(
            **PAYLOAD,
            firmware_version=release.version,
            security_version=release.security_version,
            key_name=KEY_NAME,
            kernel_release=kernel_release,
        )
    except (KeyError, ValueError) as exc:
        raise InputError(f"{TEMPLATE}: placeholder {exc} has no value") from exc


def mkimage(ctx: Context, rec: StageRecord, args: list[str | Path], *, epoch: int, cwd: Path) -> None:
    """mkimage with the pinned dtc and a fixed clock (its timestamps are SOURCE_DATE_EPOCH)."""
    dtc = ctx.tool("dtc")
    rec.tools[dtc.name] = dtc.version  # mkimage runs it
    env = {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC", "MKIMAGE_DTC": str(dtc.path)}
    runner.run(rec, ctx.tool("mkimage"), args, env=env, cwd=cwd, timeout=600)


def sign(ctx: Context, rec: StageRecord, its: Path, out: Path, *, keydir: Path | None, epoch: int) -> Path:
    """``mkimage -f its [-k keydir] out`` (no key dir: the signature node is left without a value)."""
    tmp = out.with_name(f".{out.name}.tmp")
    key: list[str | Path] = ["-k", keydir] if keydir else []
    mkimage(ctx, rec, ["-f", its, *key, tmp], epoch=epoch, cwd=its.parent)
    os.replace(tmp, out)
    return out


def resign(ctx: Context, rec: StageRecord, fit: Path, *, keydir: Path, epoch: int) -> Path:
    """``mkimage -F -k keydir fit``: recompute every hash and signature of an existing FIT, in place."""
    mkimage(ctx, rec, ["-F", "-k", keydir, fit], epoch=epoch, cwd=fit.parent)
    return fit


def device_trees(ctx: Context, rec: StageRecord, dumped: Path, work: Path) -> tuple[Path, Path]:
    """From QEMU's dumped tree: ``base.dtb`` (random seeds removed) and ``kernel.dtb`` (+ bootargs)."""
    tree = fdt.parse(dumped.read_bytes())
    found = fdt.compatibles(tree.root)
    if b"tcg,tpm-tis-mmio" not in found:
        raise BuildError(f"{dumped}: no tcg,tpm-tis-mmio node; it must be dumped while swtpm runs")
    if b"arm,pl061" in found:
        raise BuildError(f"{dumped}: lists arm,pl061, so it was dumped without -bios (the kernel would die)")
    base, kernel = work / "base.dtb", work / PAYLOAD["fdt"]
    shutil.copyfile(dumped, base)
    chosen = tree.root.find("/chosen")
    fdtput = ctx.tool("fdtput")
    for prop in SEEDS:
        if chosen.has(prop):
            runner.run(rec, fdtput, ["-d", base, "/chosen", prop])
    # fdtput -d leaves the deleted bytes (random seeds) in the blob's free space: dtc rewrites it whole.
    runner.run(rec, ctx.tool("dtc"), ["-q", "-I", "dtb", "-O", "dtb", "-o", base, base])
    shutil.copyfile(base, kernel)
    runner.run(rec, fdtput, ["-t", "s", kernel, "/chosen", "bootargs", BOOTARGS])
    return base, kernel


def control_dtb(
    ctx: Context, rec: StageRecord, base: Path, its: Path, out: Path, *, keydir: Path, minimum: int, epoch: int
) -> Path:
    """QEMU's tree + /config/secure-iot,min-security-version + the key from ``keydir``, marked required.

    A /config/bootcmd or bootdelay there would override U-Boot's built-in boot policy (common/cli.c),
    so a tree that already has /config is refused rather than extended.
    """
    if any(child.name == "config" for child in fdt.parse(base.read_bytes()).root.children):
        raise BuildError(f"{base} already has /config (a bootcmd there would replace U-Boot's boot policy)")
    with tempfile.TemporaryDirectory(dir=its.parent, prefix=".control-") as tmp:
        draft = Path(tmp) / "control.dtb"
        shutil.copyfile(base, draft)
        fdtput = ctx.tool("fdtput")
        runner.run(rec, fdtput, ["-c", draft, "/config"])
        runner.run(rec, fdtput, ["-t", "u", draft, "/config", "secure-iot,min-security-version", str(minimum)])
        # -K writes the public key of the signing key into the tree, -r marks it required.
        args: list[str | Path] = ["-f", its, "-k", keydir, "-K", draft, "-r", Path(tmp) / "throwaway.fit"]
        mkimage(ctx, rec, args, epoch=epoch, cwd=its.parent)
        key = fdt.parse(draft.read_bytes()).root.find(f"/signature/key-{KEY_NAME}")
        if fdt.text(key, "required") != "conf":
            raise BuildError(f"{draft}: key-{KEY_NAME} is not marked required=conf")
        os.replace(draft, out)
    return out


def compressed_kernel(image: Path) -> Path:
    """The arm64 Image gzipped like ``gzip -n -9`` (34 MB -> 12 MB), cached beside the Image."""
    out = image.with_name(image.name + ".gz")
    if not out.is_file():
        atomic.write_bytes(out, gzip.compress(image.read_bytes(), compresslevel=9, mtime=0))
    return out
