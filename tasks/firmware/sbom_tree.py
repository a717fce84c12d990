"""What syft reads to describe the firmware: the initramfs unpacked, plus a dpkg database of the
Debian packages the firmware is made of.

The initramfs is what the device runs (busybox, the agent, the modules). U-Boot and the kernel
are not files syft can recognise inside a FIT, yet they are Debian packages pinned in tools.lock
([inputs.*]): U-Boot built from the `u-boot` source package (shipped by Debian as u-boot-qemu),
the kernel from linux-image-*, busybox from busybox-static. A dpkg status file listing exactly
those, with their Debian versions and source packages, and Debian's os-release, make syft emit
them as pkg:deb/debian/... packages that grype matches against Debian's advisories — the same
matching the image's packages get. Both files exist only in this SBOM tree, never on the device.
"""

from __future__ import annotations

import gzip
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from tasks.core import atomic
from tasks.core.errors import InputError
from tasks.toolchain.inputs import PinnedInput

OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
# pinned input -> (binary package the firmware's component corresponds to, architecture, what)
COMPONENTS = {
    "u-boot-source": ("u-boot-qemu", "arm64", "U-Boot (qemu_arm64 + firmware/u-boot/secure-iot.config), in u-boot.bin"),
    "linux-image": ("", "arm64", "the kernel in the FIT"),
    "busybox": ("", "arm64", "/bin/busybox of the initramfs"),
}
SOURCES = {"u-boot-source": "u-boot", "linux-image": "linux", "busybox": "busybox"}


def unpack_newc(archive: bytes, dest: Path) -> list[str]:
    """Regular files, directories and symlinks of a (gzip) cpio newc archive into ``dest``; the paths."""
    data = gzip.decompress(archive) if archive[:2] == b"\x1f\x8b" else archive
    dest.mkdir(parents=True, exist_ok=True)
    pos = 0
    paths: list[str] = []
    while True:
        if data[pos : pos + 6] != b"070701":
            raise InputError(f"initramfs: no newc header at byte {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_at = pos + 110
        name = data[name_at : name_at + namesize - 1].decode()
        body_at = name_at + namesize + (-(110 + namesize) % 4)
        body = data[body_at : body_at + size]
        pos = body_at + size + (-size % 4)
        if name == "TRAILER!!!":
            return paths
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise InputError(f"initramfs: member {name!r} escapes the tree")
        target = dest / relative
        if target.is_symlink() or not target.parent.resolve().is_relative_to(dest.resolve()):  # via a symlink
            raise InputError(f"initramfs: member {name!r} escapes the tree")
        if stat.S_ISDIR(mode):
            target.mkdir(parents=True, exist_ok=True)
        elif stat.S_ISREG(mode):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            target.chmod(stat.S_IMODE(mode) & 0o755)
        elif stat.S_ISLNK(mode):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(body.decode())
        else:
            continue  # device nodes: nothing to describe
        paths.append(name)


def dpkg_status(inputs: Mapping[str, PinnedInput]) -> str:
    """A dpkg status database of the firmware's Debian packages, from their pins."""
    stanzas = []
    for name, (binary, arch, what) in COMPONENTS.items():
        pin = inputs.get(name)
        if pin is None:
            raise InputError(f"tools.lock has no [inputs.{name}]: the firmware SBOM names every pinned component")
        source = SOURCES[name]
        source_version = pin.version.split("+b", 1)[0] if "+b" in pin.version else ""  # a binNMU's source
        stanzas.append(
            "\n".join(
                [
                    f"Package: {binary or pin.package}",
                    "Status: install ok installed",
                    "Maintainer: Debian (pinned in tools.lock [inputs." + name + "])",
                    f"Architecture: {arch}",
                    f"Source: {source}" + (f" ({source_version})" if source_version else ""),
                    f"Version: {pin.version}",
                    f"Description: {what}",
                ]
            )
        )
    return "\n\n".join(stanzas) + "\n"


def sbom_tree(initramfs: bytes, inputs: Mapping[str, PinnedInput], dest: Path) -> list[str]:
    """Rebuild ``dest``: the unpacked initramfs plus the Debian description; the initramfs paths."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    paths = unpack_newc(initramfs, dest / "initramfs")
    atomic.write_text(dest / "etc/os-release", OS_RELEASE)
    atomic.write_text(dest / "var/lib/dpkg/status", dpkg_status(inputs))
    return paths
