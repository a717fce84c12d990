"""The initramfs unpacks to the tree it was packed from; names that leave the tree are refused."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.firmware.rootfs import Entry, cpio_newc, initramfs
from tasks.firmware.unpack import unpack_initramfs

DIR, FILE, LINK, DEV = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o600


def test_round_trip_of_the_writer_the_firmware_uses(tmp_path: Path) -> None:
    entries = [
        Entry("bin", DIR),
        Entry("bin/busybox", FILE, b"\x7fELF busybox"),
        Entry("bin/sh", LINK, b"busybox"),
        Entry("dev", DIR),
        Entry("dev/console", DEV, rdev=(5, 1)),
        Entry("etc/secure-iot/agent.conf", stat.S_IFREG | 0o644, b"x=1\n"),
    ]
    archive = tmp_path / "initramfs.cpio.gz"
    archive.write_bytes(initramfs(entries, 1_700_000_000))
    tree = tmp_path / "rootfs"
    assert unpack_initramfs(archive, tree) == 5  # the device node is skipped
    assert (tree / "bin/busybox").read_bytes() == b"\x7fELF busybox"
    assert stat.S_IMODE((tree / "bin/busybox").stat().st_mode) == 0o755
    assert (tree / "bin/sh").is_symlink() and (tree / "bin/sh").readlink() == Path("busybox")
    assert (tree / "etc/secure-iot/agent.conf").read_text() == "x=1\n"
    assert not (tree / "dev/console").exists()


@pytest.mark.parametrize("name", ["../escape", "bin/../../escape", "/etc/passwd"])
def test_a_name_outside_the_tree_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.cpio.gz"
    archive.write_bytes(gzip.compress(cpio_newc([Entry(name, FILE, b"x")], 0)))
    with pytest.raises(InputError, match="outside the root filesystem"):
        unpack_initramfs(archive, tmp_path / "rootfs")
    assert not (tmp_path / "escape").exists()


def test_not_an_initramfs(tmp_path: Path) -> None:
    archive = tmp_path / "x.gz"
    archive.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(InputError, match="not a cpio newc"):
        unpack_initramfs(archive, tmp_path / "rootfs")
