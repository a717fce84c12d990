"""The firmware SBOM tree: the initramfs unpacked as the device sees it, and the pinned Debian components."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.firmware import rootfs, sbom_tree
from tasks.toolchain.inputs import load_inputs
from tests.support.project import REPO
from tests.unit.firmware.test_rootfs import RECIPE, USERLAND


def test_the_unpacked_initramfs_is_the_recipe(tmp_path: Path) -> None:
    archive = rootfs.initramfs(rootfs.initramfs_entries(RECIPE, USERLAND), 42)
    paths = sbom_tree.unpack_newc(archive, tmp_path)
    assert "init" in paths and "dev/console" not in paths  # device nodes describe nothing
    assert (tmp_path / "init").read_bytes() == RECIPE["init"]
    assert stat.S_IMODE((tmp_path / "init").stat().st_mode) & 0o111
    assert (tmp_path / "sbin/secure-iot-agent").read_bytes() == RECIPE["agent"]
    assert (tmp_path / "bin/sh").is_symlink() and str((tmp_path / "bin/sh").readlink()) == "busybox"


def test_a_member_outside_the_tree_is_refused(tmp_path: Path) -> None:
    archive = rootfs.cpio_newc([rootfs.Entry("../escape", stat.S_IFREG | 0o644, b"x")], 0)
    with pytest.raises(InputError, match="escapes the tree"):
        sbom_tree.unpack_newc(archive, tmp_path / "tree")
    assert not (tmp_path / "escape").exists()


def test_the_dpkg_database_names_each_pinned_component_with_its_debian_version() -> None:
    inputs = load_inputs(REPO / "tools.lock")
    status = sbom_tree.dpkg_status(inputs)
    stanzas = {s.split("\n", 1)[0].removeprefix("Package: "): s for s in status.strip().split("\n\n")}
    assert set(stanzas) == {"u-boot-qemu", inputs["linux-image"].package, "busybox-static"}
    assert f"Version: {inputs['u-boot-source'].version}" in stanzas["u-boot-qemu"]
    assert "Source: u-boot\n" in stanzas["u-boot-qemu"]
    busybox = inputs["busybox"].version
    assert f"Version: {busybox}" in stanzas["busybox-static"]
    if "+b" in busybox:  # a binNMU names its source version
        assert f"Source: busybox ({busybox.split('+b', 1)[0]})" in stanzas["busybox-static"]


def test_a_missing_pin_is_refused() -> None:
    inputs = load_inputs(REPO / "tools.lock")
    del inputs["busybox"]
    with pytest.raises(InputError, match=r"\[inputs.busybox\]"):
        sbom_tree.dpkg_status(inputs)


def test_a_member_through_an_unpacked_symlink_is_refused(tmp_path: Path) -> None:
    entries = [
        rootfs.Entry("link", stat.S_IFLNK | 0o777, str(tmp_path).encode()),
        rootfs.Entry("link/planted", stat.S_IFREG | 0o644, b"x"),
    ]
    with pytest.raises(InputError, match="escapes the tree"):
        sbom_tree.unpack_newc(rootfs.cpio_newc(entries, 0), tmp_path / "tree")
    assert not (tmp_path / "planted").exists()
