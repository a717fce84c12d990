"""The device's userland: tpm_tis.ko built out of tree, and a reproducible initramfs (cpio newc, gzip -n).

Debian's arm64 kernel lacks CONFIG_TCG_TIS, the driver for QEMU's MMIO TPM, so tpm_tis.c is built
against the matching headers with the cross compiler and shipped beside the stock tpm_tis_core.ko
(unsigned: it taints the kernel; a kernel of our own with the driver built in is the product
answer, see README). The cpio archive is written here, not by cpio(1): every byte then follows
from the recipe (sorted names, uid/gid 0, one mtime = SOURCE_DATE_EPOCH), with no root needed
for /dev/console.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import BuildError
from tasks.core.evidence import StageRecord
from tasks.firmware import sources
from tasks.firmware.u_boot import compiler_identity, cross_prefix
from tasks.toolchain.archive import Fetched

ROOTFS = "firmware/rootfs"
AGENT = "firmware/agent/secure-iot-agent"
TPM_SOURCES = ("tpm_tis.c", "tpm.h", "tpm_tis_core.h")  # drivers/char/tpm/ of linux-source
KBUILD_INPUTS = ("linux-headers", "linux-headers-common", "linux-kbuild")
MODULE_RECIPE = "tpm_tis-recipe-1"


def module_vermagic(module: bytes) -> str:
    """The vermagic= entry of a kernel module's .modinfo section."""
    start = module.find(b"vermagic=")
    if start < 0:
        raise BuildError("kernel module has no vermagic in .modinfo")
    return module[start + len("vermagic=") : module.index(b"\0", start)].decode()


def _extract_members(archive: Path, wanted: dict[str, Path]) -> None:
    """Only the named regular files of a tar.xz, each written by us to its chosen path."""
    with tarfile.open(archive, "r|xz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                source = tar.extractfile(member)
                if source is not None:
                    atomic.write_bytes(wanted.pop(member.name), source.read())
            if not wanted:
                return
    raise BuildError(f"{archive.name} lacks {', '.join(sorted(wanted))}")


def tpm_tis_module(ctx: Context, rec: StageRecord, kernel: sources.Kernel) -> Path:
    """tpm_tis.ko for ``kernel``, cached by the digests of everything it is built from."""
    debs = {name: sources.deb(ctx, name) for name in (*KBUILD_INPUTS, "linux-source")}
    kbuild = ctx.inside(f"{ROOTFS}/tpm_tis/Kbuild")
    rec.add_input(kbuild, "text/plain")
    parts = [f"{n}={d.sha256}" for n, d in sorted(debs.items())]
    parts += [kernel.sha256, compiler_identity(ctx, rec), atomic.sha256_file(kbuild), MODULE_RECIPE]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    with sources.cache_entry(sources.firmware_cache("tpm_tis", key[:32])) as entry:
        module = entry / "tpm_tis.ko"
        if not module.is_file():
            with tempfile.TemporaryDirectory(dir=entry, prefix=".build-") as tmp:
                built = _build_module(ctx, rec, Path(tmp), debs, kbuild, kernel.release)
                atomic.write_bytes(module, built.read_bytes())
    vermagic = module_vermagic(module.read_bytes())
    if not vermagic.startswith(kernel.release + " "):
        raise BuildError(f"tpm_tis.ko vermagic {vermagic!r} does not match the kernel {kernel.release}")
    return module


def _build_module(
    ctx: Context, rec: StageRecord, work: Path, debs: dict[str, Fetched], kbuild: Path, release: str
) -> Path:
    tree = work / "kbuild"
    for name in KBUILD_INPUTS:
        sources.unpack_deb(ctx, rec, debs[name].path, tree)
    headers = tree / "usr" / "src" / f"linux-headers-{release}"
    # The arm64 headers include the common half by absolute path (/usr/src/...): point it here.
    makefile = headers / "Makefile"
    atomic.write_text(makefile, makefile.read_text().replace("include /usr/src/", f"include {tree}/usr/src/"))
    src = work / "tpm_tis"
    unpacked = sources.unpack_deb(ctx, rec, debs["linux-source"].path, work / "linux-source")
    tarball = next((unpacked / "usr" / "src").glob("linux-source-*.tar.xz"), None)
    if tarball is None:
        raise BuildError(f"{debs['linux-source'].path.name} has no usr/src/linux-source-*.tar.xz")
    top = tarball.name.removesuffix(".tar.xz")
    _extract_members(tarball, {f"{top}/drivers/char/tpm/{n}": src / n for n in TPM_SOURCES})
    atomic.write_bytes(src / "Kbuild", kbuild.read_bytes())
    # -g0: no debug info, so no build path and no strip step; the prefix maps cover __FILE__.
    kcflags = f"-g0 -ffile-prefix-map={src}=. -ffile-prefix-map={tree}=."
    args: list[str | Path] = ["-C", headers, f"M={src}", "ARCH=arm64", f"CROSS_COMPILE={cross_prefix(ctx)}"]
    runner.run(rec, ctx.tool("make"), [*args, f"KCFLAGS={kcflags}", "modules"], env={"LC_ALL": "C"}, timeout=900)
    return src / "tpm_tis.ko"


# --- cpio newc: every byte decided by the recipe ---------------------------------------


@dataclass(frozen=True)
class Entry:
    path: str  # without the leading "/"
    mode: int  # full st_mode
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _newc(ino: int, entry: Entry, mtime: int) -> bytes:
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = [ino, entry.mode, 0, 0, nlink, mtime, len(entry.data), 0, 0, *entry.rdev, len(name), 0]
    head = b"070701" + b"".join(f"{f:08x}".encode() for f in fields) + name
    head += b"\0" * (-len(head) % 4)
    return head + entry.data + b"\0" * (-len(entry.data) % 4)


def cpio_newc(entries: list[Entry], mtime: int) -> bytes:
    """A newc archive: sorted by path, inode numbers by position, uid/gid 0, one mtime."""
    ordered = sorted(entries, key=lambda e: e.path)
    duplicates = sorted({a.path for a, b in itertools.pairwise(ordered) if a.path == b.path})
    if duplicates:
        raise BuildError(f"initramfs lists these paths twice: {duplicates}")
    body = b"".join(_newc(i + 1, e, mtime) for i, e in enumerate(ordered))
    body += _newc(0, Entry("TRAILER!!!", 0), 0)
    return body + b"\0" * (-len(body) % 512)


def listing(text: str) -> list[str]:
    """One name a line; blank lines and # comments ignored."""
    return [w for line in text.splitlines() if (w := line.split("#", 1)[0].strip())]


@dataclass(frozen=True)
class Userland:
    """What goes into the initramfs besides the recipe files in firmware/."""

    busybox: bytes
    modules: dict[str, bytes]  # file name -> module
    release: dict[str, str]  # /etc/secure-iot/release: FIRMWARE_VERSION, SECURITY_VERSION


def initramfs_entries(recipe: dict[str, bytes], userland: Userland) -> list[Entry]:
    """The initramfs tree. ``recipe`` holds firmware/rootfs/{init,applets,load-order} and the agent."""
    d, x, r = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFREG | 0o644
    dirs = ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "etc/secure-iot", "lib", "lib/modules")
    entries = [Entry(p, d) for p in dirs]
    entries.append(Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))  # opened before /init runs
    entries.append(Entry("bin/busybox", x, userland.busybox))
    entries += [Entry(f"bin/{a}", stat.S_IFLNK | 0o777, b"busybox") for a in listing(recipe["applets"].decode())]
    entries.append(Entry("init", x, recipe["init"]))
    entries.append(Entry("sbin/secure-iot-agent", x, recipe["agent"]))
    order = listing(recipe["load-order"].decode())
    if sorted(order) != sorted(userland.modules):
        raise BuildError(f"{ROOTFS}/load-order {order} does not list exactly the modules {sorted(userland.modules)}")
    entries.append(Entry("lib/modules/load-order", r, "\n".join(order).encode() + b"\n"))
    entries += [Entry(f"lib/modules/{name}", r, data) for name, data in userland.modules.items()]
    release = "".join(f"{k}={v}\n" for k, v in sorted(userland.release.items()))
    entries.append(Entry("etc/secure-iot/release", r, release.encode()))
    return entries


def recipe_files(ctx: Context, rec: StageRecord) -> dict[str, bytes]:
    """The initramfs recipe in firmware/, each file recorded as an input."""
    paths = {n: ctx.inside(f"{ROOTFS}/{n}") for n in ("init", "applets", "load-order")} | {"agent": ctx.inside(AGENT)}
    for path in paths.values():
        rec.add_input(path, "text/plain")
    return {name: path.read_bytes() for name, path in paths.items()}


def initramfs(entries: list[Entry], mtime: int) -> bytes:
    """cpio newc compressed like ``gzip -n -9`` (no name, mtime 0)."""
    return gzip.compress(cpio_newc(entries, mtime), compresslevel=9, mtime=0)
