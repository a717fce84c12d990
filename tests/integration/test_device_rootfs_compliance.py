"""OpenSCAP over the device's root filesystem (issue #16): the real oscap-chroot, the image's profile.

The device's userland is busybox in an initramfs, not Debian: the Debian SCAP content's
platform check matches nothing there, so no rule applies and the stage must fail with that
reason rather than pass on zero evidence.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tasks.firmware.rootfs import Entry, initramfs
from tests.support.project import REPO, run_tasks

pytestmark = pytest.mark.slow


def test_a_busybox_rootfs_gives_no_compliance_evidence_and_fails_closed(tmp_path: Path) -> None:
    entries = [
        Entry("bin", stat.S_IFDIR | 0o755),
        Entry("bin/busybox", stat.S_IFREG | 0o755, b"\x7fELF"),
        Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        Entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\nexec /bin/sh\n"),
        Entry("etc", stat.S_IFDIR | 0o755),
    ]
    archive = tmp_path / "initramfs.cpio.gz"
    archive.write_bytes(initramfs(entries, 1_700_000_000))
    out = tmp_path / "out"
    done = run_tasks("compliance", "--device-rootfs", str(archive), root=REPO, env={"SECURE_IOT_OUT": str(out)})
    assert done.returncode != 0
    assert "applies to the device rootfs" in done.output
    summary = json.loads((out / "compliance" / "device-rootfs" / "summary.json").read_text())
    assert summary["selected"] > 0 and summary["applicable"] == 0, summary
    assert (out / "compliance" / "device-rootfs" / "results.xml").is_file()
