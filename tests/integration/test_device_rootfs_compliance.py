"""OpenSCAP over the device's root filesystem (issue #16): the real oscap-chroot, the image's profile.

The device's userland is busybox in an initramfs, not Debian: the Debian SCAP content's
platform check matches nothing there, so no rule applies and the stage must fail with that
reason rather than pass on zero evidence.

A root filesystem that says it is Debian 12 (issue #30) is judged rule by rule, as the image
is: its failing rules (the same 21 the image fails) block unless a waiver scoped to
``device-rootfs`` names each; the waivers used are in the evidence and the report.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from tasks.firmware.rootfs import Entry, initramfs
from tasks.policy.security_policy import SSG_RULE_PREFIX
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


def debian_rootfs(tmp_path: Path) -> Path:
    """The smallest tree the Debian content evaluates: a Debian 12 version file, the account
    files root owns (the required rules pass), an empty dpkg database."""
    directory, regular = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644
    entries = [
        Entry("etc", directory),
        Entry("etc/debian_version", regular, b"12.11\n"),
        Entry("etc/passwd", regular, b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry("etc/group", regular, b"root:x:0:\n"),
        Entry("var", directory),
        Entry("var/lib", directory),
        Entry("var/lib/dpkg", directory),
        Entry("var/lib/dpkg/status", regular, b""),
    ]
    archive = tmp_path / "initramfs.cpio.gz"
    archive.write_bytes(initramfs(entries, 1_700_000_000))
    return archive


def device_policy(tmp_path: Path, drop: str = "") -> Path:
    """The repository's policy with its compliance waivers scoped to the device rootfs instead
    of the image (``drop``: one waiver left out)."""
    data = yaml.safe_load((REPO / "security-policy.yaml").read_text())
    data["waivers"] = [w for w in data["waivers"] if w["id"] != drop]
    for waiver in data["waivers"]:
        if waiver["gate"] == "compliance":
            waiver["scope"] = {"path": "device-rootfs"}
    path = tmp_path / "security-policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_failing_rule_no_waiver_names_blocks_and_waived_ones_are_shown_with_reason_and_expiry(
    tmp_path: Path,
) -> None:
    archive, out = debian_rootfs(tmp_path), tmp_path / "out"
    tmp_rule = SSG_RULE_PREFIX + "partition_for_tmp"
    (tmp_path / "unwaived").mkdir()
    env = {"SECURE_IOT_OUT": str(out), "SECURE_IOT_POLICY": str(device_policy(tmp_path / "unwaived", drop=tmp_rule))}
    done = run_tasks("compliance", "--device-rootfs", str(archive), root=REPO, env=env)
    assert done.returncode == 1, done.output
    assert f"1 blocking compliance rule(s) on the device-rootfs: {tmp_rule} (device-rootfs: fail)" in done.output
    summary = json.loads((out / "compliance" / "device-rootfs" / "summary.json").read_text())
    assert summary["blocking_rules"] == [tmp_rule] and summary["required_failed"] == []

    (tmp_path / "waived").mkdir()
    env["SECURE_IOT_POLICY"] = str(device_policy(tmp_path / "waived"))
    done = run_tasks("compliance", "--device-rootfs", str(archive), root=REPO, env=env)
    assert done.returncode == 0, done.output
    summary = json.loads((out / "compliance" / "device-rootfs" / "summary.json").read_text())
    waived = {w["finding"]: w for w in summary["waived"]}
    assert len(waived) == summary["results"]["fail"] == 21 and summary["blocking_rules"] == []
    assert waived[tmp_rule]["owner"] == "platform-team" and waived[tmp_rule]["expires"] == "2027-06-30"
    assert waived[tmp_rule]["justification"].startswith("an image has no partitions")

    assert run_tasks("report", root=REPO, env=env).returncode == 0
    page = (out / "report.html").read_text()
    row = page.split(f"<code>{tmp_rule}</code>", 1)[1].split("</tr>", 1)[0]
    assert "platform-team" in row and "an image has no partitions" in row and "2027-06-30" in row


def test_an_expired_compliance_waiver_stops_the_stage_with_one_line_naming_it(tmp_path: Path) -> None:
    policy = device_policy(tmp_path)
    data = yaml.safe_load(policy.read_text())
    index, waiver = next((i, w) for i, w in enumerate(data["waivers"]) if w["gate"] == "compliance")
    waiver["expires"] = "2026-01-31"
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"SECURE_IOT_OUT": str(tmp_path / "out"), "SECURE_IOT_POLICY": str(policy)}
    done = run_tasks("compliance", "--device-rootfs", str(debian_rootfs(tmp_path)), root=REPO, env=env)
    assert done.returncode != 0
    line = f"{policy}: waivers[{index}] ({waiver['id']}): expired on 2026-01-31"
    assert [x for x in done.output.splitlines() if line in x] != [], done.output
    assert not (tmp_path / "out" / "compliance" / "device-rootfs" / "results.xml").exists()  # before oscap ran
