"""The firmware's pinned inputs (tools.lock [inputs.*]), fetched and unpacked into the firmware cache.

Fetching and the sha256 checks are the toolchain's (Context.pinned_input); this module knows
which packages the firmware needs and which of their files it keeps: the kernel Image and the
stock tpm_tis_core.ko, busybox, and Debian's U-Boot source tree. Each unpacked result is cached
under the digest of the package it came from, so a changed pin never reuses an old result.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.cache import cache_root, locked
from tasks.core.errors import BuildError
from tasks.core.evidence import StageRecord
from tasks.toolchain.archive import Fetched

KERNEL = "linux-image"
BUSYBOX = "busybox"
U_BOOT_SOURCE = "u-boot-source"
ARM64_IMAGE_MAGIC = b"ARM\x64"  # at offset 56 of a raw arm64 Image (Debian's arm64 vmlinuz is one)


def firmware_cache(*parts: str) -> Path:
    """Where firmware build results outlive a run (tasks/core/cache.py's root)."""
    return cache_root().joinpath("firmware", *parts)


@contextlib.contextmanager
def cache_entry(path: Path) -> Iterator[Path]:
    """One writer per cache entry at a time (two sessions may build the same thing)."""
    path.mkdir(parents=True, exist_ok=True)
    with locked(path.parent / f".{path.name}.lock"):
        yield path


def deb(ctx: Context, name: str) -> Fetched:
    """The one .deb of a pinned input."""
    files = list(ctx.pinned_input(name).values())
    if len(files) != 1 or files[0].path.suffix != ".deb":
        raise BuildError(f"{name}: expected one pinned .deb, tools.lock lists {len(files)} file(s)")
    return files[0]


def unpack_deb(ctx: Context, rec: StageRecord, package: Path, into: Path) -> Path:
    """A .deb's files (not its maintainer scripts) under ``into``; nothing is installed."""
    into.mkdir(parents=True, exist_ok=True)
    runner.run(rec, ctx.tool("dpkg-deb"), ["-x", package, into], timeout=900)
    return into


@dataclass(frozen=True)
class Kernel:
    image: Path  # raw arm64 Image
    tpm_tis_core: Path  # the stock module tpm_tis.ko builds on
    release: str  # uname -r, e.g. 6.1.0-57-arm64
    package: str  # the .deb it came from
    sha256: str  # of that .deb


def kernel_release(package_file: str) -> str:
    """linux-image-6.1.0-57-arm64-unsigned_6.1.192-3_arm64.deb -> 6.1.0-57-arm64."""
    return package_file.split("_", 1)[0].removeprefix("linux-image-").removesuffix("-unsigned")


def kernel(ctx: Context, rec: StageRecord) -> Kernel:
    """The kernel Image and tpm_tis_core.ko of the pinned linux-image package (cached by its digest)."""
    fetched = deb(ctx, KERNEL)
    release = kernel_release(fetched.path.name)
    kept = {"Image": f"boot/vmlinuz-{release}", "tpm_tis_core.ko": f"lib/modules/{release}/kernel/drivers/char/tpm"}
    with cache_entry(firmware_cache("kernel", fetched.sha256[:24])) as entry:
        if not all((entry / name).is_file() for name in kept):
            with tempfile.TemporaryDirectory(dir=entry) as tmp:
                unpacked = unpack_deb(ctx, rec, fetched.path, Path(tmp))
                for name, where in kept.items():
                    source = unpacked / where if name == "Image" else unpacked / where / name
                    if not source.is_file():
                        raise BuildError(f"{fetched.path.name} has no {where}")
                    atomic.write_bytes(entry / name, source.read_bytes())
    image = entry / "Image"
    with image.open("rb") as handle:
        header = handle.read(64)
    if header[56:60] != ARM64_IMAGE_MAGIC:
        raise BuildError(f"{image}: not a raw arm64 Image (no ARM\\x64 magic at offset 56)")
    return Kernel(image, entry / "tpm_tis_core.ko", release, fetched.path.name, fetched.sha256)


def busybox(ctx: Context, rec: StageRecord) -> Path:
    """bin/busybox of the pinned busybox-static arm64 package (cached by its digest)."""
    fetched = deb(ctx, BUSYBOX)
    with cache_entry(firmware_cache("busybox", fetched.sha256[:24])) as entry:
        binary = entry / "busybox"
        if not binary.is_file():
            with tempfile.TemporaryDirectory(dir=entry) as tmp:
                unpacked = unpack_deb(ctx, rec, fetched.path, Path(tmp)) / "bin" / "busybox"
                atomic.write_bytes(binary, unpacked.read_bytes(), mode=0o755)
    head = binary.read_bytes()[:20]
    if head[:4] != b"\x7fELF" or head[18:20] != b"\xb7\x00":  # e_machine EM_AARCH64
        raise BuildError(f"{binary}: not an arm64 ELF")
    return binary


def u_boot_tree(ctx: Context, rec: StageRecord, files: dict[str, Fetched]) -> Path:
    """Debian's U-Boot source, unpacked with its Debian patches applied (dpkg-source -x), cached."""
    dsc = next(f for name, f in files.items() if name.endswith(".dsc"))
    with cache_entry(firmware_cache("u-boot-source", dsc.sha256[:24])) as entry:
        tree = entry / "tree"
        if not (entry / "unpacked").is_file():
            shutil.rmtree(tree, ignore_errors=True)
            # The files were sha256-checked against tools.lock just now; dpkg-source would check the
            # .dsc's OpenPGP signature against keys this machine may not have (--no-check).
            runner.run(rec, ctx.tool("dpkg-source"), ["--no-check", "-x", dsc.path, tree], timeout=900)
            atomic.write_text(entry / "unpacked", f"{dsc.path.name}\n")
    return tree
