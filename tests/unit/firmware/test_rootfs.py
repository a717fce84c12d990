"""The initramfs: a newc archive whose every byte follows from the recipe."""

from __future__ import annotations

import gzip
import stat

import pytest

from tasks.core.errors import BuildError
from tasks.firmware import rootfs
from tests.support.project import REPO

RECIPE = {n: (REPO / rootfs.ROOTFS / n).read_bytes() for n in ("init", "applets", "load-order")}
RECIPE["agent"] = (REPO / rootfs.AGENT).read_bytes()
USERLAND = rootfs.Userland(
    busybox=b"\x7fELF busybox",
    modules={"tpm_tis_core.ko": b"core", "tpm_tis.ko": b"tis"},
    release={"FIRMWARE_VERSION": "1.0.0", "SECURITY_VERSION": "1"},
)


def members(archive: bytes) -> dict[str, tuple[int, int, bytes]]:
    """name -> (mode, mtime, data) of a newc archive."""
    out: dict[str, tuple[int, int, bytes]] = {}
    pos = 0
    while True:
        head = archive[pos : pos + 110]
        assert head[:6] == b"070701"
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name_end = pos + 110 + namesize
        name = archive[pos + 110 : name_end - 1].decode()
        data_start = name_end + (-name_end % 4)
        data = archive[data_start : data_start + filesize]
        if name == "TRAILER!!!":
            return out
        out[name] = (fields[1], fields[5], data)
        pos = data_start + filesize + (-(data_start + filesize) % 4)


def test_the_initramfs_is_the_same_bytes_every_time() -> None:
    entries = rootfs.initramfs_entries(RECIPE, USERLAND)
    assert rootfs.initramfs(entries, 1700000000) == rootfs.initramfs(list(reversed(entries)), 1700000000)
    assert rootfs.initramfs(entries, 1700000000) != rootfs.initramfs(entries, 1700000001)


def test_the_tree_holds_init_agent_modules_and_the_console_device() -> None:
    tree = members(gzip.decompress(rootfs.initramfs(rootfs.initramfs_entries(RECIPE, USERLAND), 42)))
    assert list(tree) == sorted(tree)
    assert {m[1] for m in tree.values()} == {42}
    mode, _, _ = tree["dev/console"]
    assert stat.S_ISCHR(mode)
    assert tree["init"][2] == RECIPE["init"] and tree["init"][0] & 0o111
    assert tree["sbin/secure-iot-agent"][2] == RECIPE["agent"]
    assert tree["lib/modules/tpm_tis.ko"][2] == b"tis"
    assert tree["lib/modules/load-order"][2] == b"tpm_tis_core.ko\ntpm_tis.ko\n"
    assert tree["etc/secure-iot/release"][2] == b"FIRMWARE_VERSION=1.0.0\nSECURITY_VERSION=1\n"
    assert stat.S_ISLNK(tree["bin/sh"][0]) and tree["bin/sh"][2] == b"busybox"


def test_the_load_order_must_name_exactly_the_modules_built() -> None:
    extra = rootfs.Userland(USERLAND.busybox, {**USERLAND.modules, "virtio.ko": b"v"}, USERLAND.release)
    with pytest.raises(BuildError, match="load-order"):
        rootfs.initramfs_entries(RECIPE, extra)


def test_a_path_listed_twice_is_refused() -> None:
    twice = [rootfs.Entry("init", stat.S_IFREG | 0o755, b"a"), rootfs.Entry("init", stat.S_IFREG | 0o755, b"b")]
    with pytest.raises(BuildError, match="twice"):
        rootfs.cpio_newc(twice, 0)


def test_comments_and_blank_lines_are_not_applets() -> None:
    assert rootfs.listing("# busybox applets\n\ncat  # for /init\nsh\n") == ["cat", "sh"]


def test_vermagic_is_read_from_modinfo() -> None:
    module = b"\x7fELF...\0license=GPL\0vermagic=6.1.0-57-arm64 SMP mod_unload modversions aarch64\0name=tpm_tis\0"
    assert rootfs.module_vermagic(module) == "6.1.0-57-arm64 SMP mod_unload modversions aarch64"
    with pytest.raises(BuildError, match="vermagic"):
        rootfs.module_vermagic(b"no modinfo")
