"""A/B update of a booted QEMU device (issue #15): real python-tuf, real RAUC, the real U-Boot of the
firmware build choosing the slot from BOOT_ORDER / BOOT_x_LEFT on the slot disk, swtpm, the kernel.

N is the session's firmware build (1.1.0, security version 2) in slot A. N+1 is the same project
built again as 1.2.0 with security version 3 (same firmware key). N+2 is N+1 re-signed with another
key of the same name: TUF and RAUC accept it (the update CA signed the bundle), U-Boot refuses it
at every attempt, so the slot runs out of attempts and U-Boot falls back to N+1 by itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks import firmware as fw
from tasks import ota
from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.firmware import measurements
from tasks.ota.repository import Config
from tests.support.firmware_build import EPOCH, FirmwareProject
from tests.support.project import REPO

pytestmark = pytest.mark.slow

MODEL = "qemu-virt-a57"
CONFIG = Config((MODEL,), MODEL, {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})
TIMEOUT = 60.0


@dataclass
class Release:
    version: str
    security_version: int
    fit: Path

    def custom(self) -> dict[str, Any]:
        return {
            "firmware_version": self.version,
            "security_version": self.security_version,
            "hardware_model": MODEL,
            "slsa_provenance": None,
            "slsa_provenance_note": "test release",
        }


@dataclass
class Bench:
    ctx: Context
    rec: StageRecord
    work: Path
    u_boot: Path
    control: Path
    releases: dict[str, Release]
    references: dict[str, dict[str, Any]]  # FIT sha256 -> reference values (with the device's control DTB)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bench(firmware: FirmwareProject, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    work = tmp_path_factory.mktemp("ota-ab")
    n = firmware.out / "firmware"
    nxt = firmware.copy(work / "next")
    release = nxt.root / "firmware" / "release.toml"
    release.write_text(
        release.read_text()
        .replace('version = "1.1.0"', 'version = "1.2.0"')
        .replace("security_version = 2", "security_version = 3")
    )
    result = nxt.run("firmware")
    assert result.returncode == 0, result.output[-4000:]
    ctx = Context.create(REPO, work / "out")
    rec = StageRecord(stage="ota-ab", root=REPO)
    ctx.bind(rec)
    n1 = nxt.out / "firmware"
    genuine = firmware_genuine(n1, n)
    bad = fw.tampered_device(ctx, rec, fw.CASES["other-key"], genuine, work / "n2", epoch=int(EPOCH))
    assert bad.fit is not None
    control = n / fw.CONTROL_DTB_NAME
    releases = {
        "N": Release("1.1.0", 2, n / fw.FIT_NAME),
        "N+1": Release("1.2.0", 3, n1 / fw.FIT_NAME),
        "N+2": Release("1.3.0", 4, bad.fit),
    }
    references = {
        _sha(r.fit): measurements.reference_values(
            r.fit.read_bytes(), control.read_bytes(), r.version, r.security_version, MODEL
        )
        for r in releases.values()
    }
    # N+2's FIT still says 1.2.0 / 3 inside: it never boots, so its reference values are never met
    return Bench(ctx, rec, work, n / fw.U_BOOT_NAME, control, releases, references)


def firmware_genuine(fit_dir: Path, device_dir: Path) -> fw.Genuine:
    return fw.Genuine(fit_dir / fw.FIT_NAME, device_dir / fw.U_BOOT_NAME, device_dir / fw.CONTROL_DTB_NAME, {})


@dataclass
class Fleet:
    bench: Bench
    repo: ota.Repository
    device: ota.Device
    disk: fw.slots.Disk
    qemu_device: fw.Device
    url: str
    boots: int = 0

    def publish(self, name: str) -> None:
        b, r = self.bench, self.bench.releases[name]
        tool = b.ctx.tool
        pki = ota.rauc_pki(tool("openssl"), b.rec, b.work / "keys" / "rauc")
        made = ota.bundle.build(
            tool("rauc"),
            tool("mksquashfs"),
            b.rec,
            pki,
            r.fit,
            b.work / f"{name}.raucb",
            model=MODEL,
            version=r.version,
            security_version=r.security_version,
            fit_digest="sha256:" + _sha(r.fit),
        )
        self.repo.publish(MODEL, made, r.custom())

    def update(self) -> ota.Outcome:
        tool = self.bench.ctx.tool
        return ota.update(
            self.device,
            ota.Source.http(self.url),
            rauc=tool("rauc"),
            mksquashfs=tool("mksquashfs"),
            rec=self.bench.rec,
            boot=self.disk,
        )

    def boot(self) -> fw.SlotBoot:
        """One power cycle; the result goes to the update client as the device's agent would report it."""
        self.boots += 1
        found = {s: self.bench.references.get(_sha_slot(self.disk, s)) for s in "AB"}
        references = {s: r for s, r in found.items() if r is not None}
        console = self.bench.work / "consoles" / f"boot-{self.boots}.log"
        got = fw.boot_slot(
            self.bench.ctx, self.bench.rec, self.qemu_device, console, references=references, timeout=TIMEOUT
        )
        if got.slot:
            self.device.boot_result(healthy=got.healthy, booted=got.slot, boot=self.disk)
        return got


def _sha_slot(disk: fw.slots.Disk, slot: str) -> str:
    """The sha256 of the FIT in a slot (its length from the FDT header's totalsize)."""
    head = disk.read_slot(slot, 8)
    if head[:4] != b"\xd0\x0d\xfe\xed":
        return ""
    return hashlib.sha256(disk.read_slot(slot, int.from_bytes(head[4:8], "big"))).hexdigest()


@pytest.fixture
def fleet(bench: Bench, tmp_path: Path) -> Iterator[Fleet]:
    keys = ota.TufKeys(bench.work / "keys" / "tuf")
    pki = ota.rauc_pki(bench.ctx.tool("openssl"), bench.rec, bench.work / "keys" / "rauc")
    repo = ota.Repository.open(tmp_path / "repository", keys, CONFIG)
    n = bench.releases["N"]
    device = ota.Device.provision(
        tmp_path / "device",
        model=MODEL,
        trusted_root=repo.trusted_root(1),
        keyring=pki.ca_cert,
        fit=n.fit,
        version=n.version,
        security_version=n.security_version,
    )
    disk = fw.slots.Disk.create(tmp_path / "device" / "slots.img", fw.env_tools(bench.ctx), bench.rec, n.fit)
    qemu_device = fw.Device(bench.u_boot, bench.control, None, disk.path)
    with ota.serve(bench.rec, repo.directory, tmp_path / "server" / "server.log") as url:
        yield Fleet(bench, repo, device, disk, qemu_device, url)


def test_update_boots_the_new_slot_and_a_failing_release_falls_back(fleet: Fleet) -> None:
    # A cut during an install: half of N+1 in slot B, BOOT_ORDER never changed -> slot A boots, healthy.
    half = fleet.bench.work / "half.fit"
    data = fleet.bench.releases["N+1"].fit.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    fleet.disk.write_slot("B", half)
    cut = fleet.boot()
    assert (cut.slot, cut.healthy, cut.report.firmware) == ("A", True, ("1.1.0", 2)), cut.checks

    # N -> N+1: TUF + RAUC verify, the FIT goes into slot B, BOOT_ORDER="B A"; U-Boot boots B.
    fleet.publish("N+1")
    got = fleet.update()
    assert (got.result, got.slot, got.version) == ("installed", "B", "1.2.0")
    assert fleet.disk.env() == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}
    assert fleet.device.state["security_counter"] == 2  # not before the new slot proved itself
    up = fleet.boot()
    assert (up.slot, up.healthy, up.report.firmware) == ("B", True, ("1.2.0", 3)), up.checks
    state = fleet.device.state
    assert (state["active"], state["security_counter"], state["slots"]["B"]["status"]) == ("B", 3, "good")
    assert fleet.disk.env()["BOOT_B_LEFT"] == "3"  # marked good: attempts refilled

    # N+2: accepted by TUF and RAUC, written to slot A and made primary; U-Boot refuses its signature.
    fleet.publish("N+2")
    got = fleet.update()
    assert (got.result, got.slot, got.version) == ("installed", "A", "1.3.0")
    refused = [fleet.boot() for _ in range(3)]
    assert [(b.slot, b.report.attempts_left["A"]) for b in refused] == [("A", 2), ("A", 1), ("A", 0)]
    for b in refused:
        lines = [line for _, line in b.report.refusals]
        assert b.report.refused and any("Failed to verify required signature" in x for x in lines), lines
    assert fleet.device.state["pending"] == "A"  # nothing decided yet: U-Boot counts, the client waits
    back = fleet.boot()
    assert (back.slot, back.healthy, back.report.firmware) == ("B", True, ("1.2.0", 3)), back.checks
    state = fleet.device.state
    assert state["last_update"] == {"result": "fell back", "slot": "A", "version": "1.3.0", "running": "1.2.0"}
    assert (state["active"], state["security_counter"], state["slots"]["A"]["status"]) == ("B", 3, "bad")
    assert fleet.disk.env() == {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"}
