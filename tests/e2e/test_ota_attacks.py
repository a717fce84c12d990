"""The OTA attack and fault matrix (issue #15), with real python-tuf, real RAUC and a real HTTP server
on 127.0.0.1. Each case starts from a fresh repository and a factory-fresh device, runs the attack,
and checks that the update is refused *and* that the device is exactly as before (same slot, same
counter, nothing in the inactive slot, no download left behind).

The bundles carry a random 64 KiB stand-in for the FIT: the attacks are on the metadata, the
transport and the bundle signature, never on the FIT's content (tests/integration/test_ota_release.py
ships the real FIT; U-Boot checks the FIT itself, tests/e2e/test_boot_tamper.py).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import TargetFile
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from tasks import ota, toolchain
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.ota.repository import Config
from tests.support.project import REPO

pytestmark = pytest.mark.slow

MODEL, OTHER = "qemu-virt-a57", "other-board"
CONFIG = Config((MODEL, OTHER), MODEL, {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})


@dataclass
class World:
    work: Path
    rec: StageRecord
    rauc: Tool
    mksquashfs: Tool
    keys: ota.TufKeys
    pki: ota.RaucPki
    factory_fit: Path
    bundles: dict[str, Path]

    def custom(self, version: str, security_version: int, model: str = MODEL) -> dict[str, Any]:
        return {
            "firmware_version": version,
            "security_version": security_version,
            "hardware_model": model,
            "slsa_provenance": None,
            "slsa_provenance_note": "test bundle",
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    work = tmp_path_factory.mktemp("ota-world")
    rec = StageRecord(stage="release", root=REPO)
    tool = {n: toolchain.resolve(n, REPO, rec) for n in ("rauc", "mksquashfs", "openssl")}
    pki = ota.rauc_pki(tool["openssl"], rec, work / "keys" / "rauc")
    rogue = ota.rauc_pki(tool["openssl"], rec, work / "keys" / "rogue-ca")  # a valid CA, not the device's
    fit = work / "factory.fit"
    fit.write_bytes(os.urandom(1 << 16))

    def make(name: str, version: str, sv: int, model: str = MODEL, signer: ota.RaucPki = pki) -> Path:
        payload = work / f"{name}.fit"
        payload.write_bytes(os.urandom(1 << 16))
        out = work / f"{name}.raucb"
        return ota.bundle.build(
            tool["rauc"],
            tool["mksquashfs"],
            rec,
            signer,
            payload,
            out,
            model=model,
            version=version,
            security_version=sv,
            fit_digest="sha256:test",
        )

    bundles = {
        "1.2.0": make("v120", "1.2.0", 3),
        "1.1.1-old": make("v111", "1.1.1", 1),
        "rogue-ca": make("rogue", "1.2.0", 3, signer=rogue),
        "other-model": make("other", "1.2.0", 3, model=OTHER),
    }
    return World(work, rec, tool["rauc"], tool["mksquashfs"], ota.TufKeys(work / "keys" / "tuf"), pki, fit, bundles)


@dataclass
class Case:
    world: World
    repo: ota.Repository
    device: ota.Device
    url: str

    def update(self, source: ota.Source | None = None) -> ota.Outcome:
        w = self.world
        return ota.update(
            self.device, source or ota.Source.http(self.url), rauc=w.rauc, mksquashfs=w.mksquashfs, rec=w.rec
        )

    def refused(self, match: str, source: ota.Source | None = None) -> None:
        before = self.device.state, self.images()
        with pytest.raises(ota.UpdateRefused, match=match):
            self.update(source)
        assert (self.device.state, self.images()) == before, "a refused update changed the device"
        assert not (self.device.directory / "downloads").exists()

    def images(self) -> dict[str, bytes | None]:
        slots = self.device.directory / "slots"
        return {s: (slots / s / "image.fit").read_bytes() if (slots / s / "image.fit").exists() else None for s in "AB"}

    def served(self, name: str) -> Path:
        return self.repo.metadata_dir / name


@pytest.fixture
def case(world: World, tmp_path: Path) -> Iterator[Case]:
    repo = ota.Repository.open(tmp_path / "repository", world.keys, CONFIG)
    device = ota.Device.provision(
        tmp_path / "device",
        model=MODEL,
        trusted_root=repo.trusted_root(1),
        keyring=world.pki.ca_cert,
        fit=world.factory_fit,
        version="1.1.0",
        security_version=2,
    )
    with ota.serve(world.rec, repo.directory, tmp_path / "server" / "server.log") as url:
        yield Case(world, repo, device, url)


def test_genuine_update_installs_into_the_inactive_slot_counter_rises_only_when_good(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    got = case.update()
    assert (got.result, got.slot, got.version, got.security_version) == ("installed", "B", "1.2.0", 3)
    state = case.device.state
    assert (state["active"], state["primary"], state["pending"], state["security_counter"]) == ("A", "B", "B", 2)
    assert state["slots"]["A"]["status"] == "good"  # the old slot is untouched and still bootable
    state = case.device.boot_result(healthy=True)
    assert (state["active"], state["security_counter"], state["slots"]["B"]["status"]) == ("B", 3, "good")
    assert case.update().result == "up-to-date"


def test_unhealthy_new_slot_falls_back_and_the_counter_stays(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    case.update()
    state = case.device.boot_result(healthy=False)
    assert (state["active"], state["primary"], state["security_counter"], state["slots"]["B"]["status"]) == (
        "A",
        "A",
        2,
        "bad",
    )


def test_1_rollback_of_the_timestamp_is_refused(case: Case) -> None:
    old = case.served("timestamp.json").read_bytes()
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    case.update()
    case.device.boot_result(healthy=True)
    case.served("timestamp.json").write_bytes(old)  # the attacker replays an older, validly signed timestamp
    case.refused("BadVersionNumberError")


def test_2_freeze_expired_timestamp_is_refused(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    case.repo.refresh_timestamp(days=-1)  # what a frozen mirror serves a day after the last real timestamp
    case.refused("ExpiredMetadataError")


def test_3_mix_and_match_role_from_another_snapshot_is_refused(case: Case) -> None:
    role = ota.role_name(MODEL)
    case.repo.publish(MODEL, case.world.bundles["1.1.1-old"], case.world.custom("1.1.1", 2))
    old_version = case.repo.roles[role].signed.version
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    new_version = case.repo.roles[role].signed.version
    shutil.copyfile(case.served(f"{old_version}.{role}.json"), case.served(f"{new_version}.{role}.json"))
    case.refused("LengthOrHashMismatchError")  # the snapshot pins each role file's sha256, before its version is read


def test_4a_target_bytes_changed_on_the_server_are_refused(case: Case) -> None:
    target = case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    stored = case.repo.targets_dir / MODEL / f"{target.hashes['sha256']}.firmware.raucb"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    case.refused("LengthOrHashMismatchError")


def test_4b_a_bundle_not_in_signed_targets_is_never_fetched(case: Case) -> None:
    rogue = case.repo.targets_dir / MODEL / "0000.firmware.raucb"
    rogue.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(case.world.bundles["1.2.0"], rogue)  # on the server, but no signed target names it
    case.refused("no target")


def test_5_bundle_signed_by_another_ca_is_refused_by_rauc(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["rogue-ca"], case.world.custom("1.2.0", 3))  # TUF-valid
    case.refused("rauc refused the bundle")


def test_6_another_models_role_cannot_ship_to_this_model(case: Case) -> None:
    # the other model's key signs a target under this model's path: the delegation does not trust it
    other = ota.role_name(OTHER)
    target = TargetFile.from_file(ota.target_path(MODEL), str(case.world.bundles["1.2.0"]), ["sha256"])
    target.unrecognized_fields["custom"] = case.world.custom("1.2.0", 3)
    case.repo.roles[other].signed.targets[target.path] = target
    case.repo.resign(other)
    case.refused("no target")


def test_6b_a_bundle_built_for_another_model_is_refused_by_its_compatible(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["other-model"], case.world.custom("1.2.0", 3))  # a release mistake
    case.refused("compatible 'secure-iot/other-board'")


def test_7_compromised_online_keys_cannot_add_a_target(case: Case) -> None:
    role = ota.role_name(MODEL)
    target = TargetFile.from_file(ota.target_path(MODEL), str(case.world.bundles["1.2.0"]), ["sha256"])
    target.unrecognized_fields["custom"] = case.world.custom("1.2.0", 3)
    case.repo.roles[role].signed.targets[target.path] = target
    case.repo.resign(role, signer_name="snapshot")  # the attacker holds snapshot + timestamp, not the model key
    case.refused("UnsignedMetadataError")


def test_8_validly_signed_older_security_version_is_refused(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.1.1-old"], case.world.custom("1.1.1", 1))
    case.refused("security version 1, below the device's counter 2")


class CutAfterFirstChunk(Urllib3Fetcher):
    """The link drops after the first 8 KiB of a target: what a device on a bad cellular link sees."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        chunks = super()._fetch(url)
        if "/targets/" not in url:
            return chunks

        def cut() -> Iterator[bytes]:
            yield next(iter(chunks))[:8192]
            raise ConnectionResetError("link dropped")

        return cut()


def test_10_interrupted_download_installs_nothing_and_a_retry_completes(case: Case) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    case.refused("download failed", ota.Source.http(case.url, CutAfterFirstChunk()))
    assert case.update().result == "installed"


def test_root_rotation_v1_to_v3_a_device_trusting_v1_walks_the_chain(case: Case) -> None:
    case.repo.rotate_root(["root-4", "root-5", "root-6"])
    assert case.repo.rotate_root(["root-7", "root-8", "root-9"]) == 3
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    assert case.update().result == "installed"
    assert '"version": 3' in (case.device.directory / "tuf" / "root.json").read_text()


def test_offline_bundle_verifies_exactly_like_online(case: Case, tmp_path: Path) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    usb = tmp_path / "usb.tar"
    ota.offline.write(case.repo, MODEL, usb)
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(usb) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = bytearray(src.extractfile(member).read())  # type: ignore[union-attr]
            if member.name.startswith("targets/"):
                data[-100] ^= 0xFF
            dst.addfile(member, io.BytesIO(bytes(data)))
    case.refused("LengthOrHashMismatchError", ota.Source.offline(tampered))
    assert case.update(ota.Source.offline(usb)).result == "installed"


def test_old_offline_bundle_is_a_freeze_and_refused(case: Case, tmp_path: Path) -> None:
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    case.repo.refresh_timestamp(days=-30)  # the stick was written a month ago: its timestamp has expired
    stale = tmp_path / "stale.tar"
    ota.offline.write(case.repo, MODEL, stale)
    case.refused("ExpiredMetadataError", ota.Source.offline(stale))


def test_device_offline_for_months_updates_from_a_fresh_repository_and_refuses_a_stale_one(case: Case) -> None:
    case.refused("no target")  # nothing published yet, but the device now trusts the current timestamp
    case.repo.publish(MODEL, case.world.bundles["1.2.0"], case.world.custom("1.2.0", 3))
    case.repo.refresh_timestamp(days=-90)  # months later: the repository's last timestamp expired long ago
    case.refused("ExpiredMetadataError")
    case.repo.refresh_timestamp()  # the online key signs a fresh one
    assert case.update().result == "installed"


def test_fleet_waves_reach_group_devices_canary_first(case: Case, tmp_path: Path) -> None:
    from tasks.ota import fleet

    w = case.world
    case.repo.publish(MODEL, w.bundles["1.2.0"], {**w.custom("1.2.0", 3), "fit_digest": "sha256:" + "1" * 64})
    desired = fleet.Desired(
        MODEL, (fleet.Group("canary", 1, "sha256:" + "1" * 64), fleet.Group("fleet", 2, "sha256:" + "1" * 64))
    )
    checked: list[Path] = []
    moves = fleet.reconcile(case.repo, desired, checked.append)
    assert [(m.group, m.result) for m in moves] == [("canary", "published"), ("fleet", "waiting for wave 1")]
    assert len(checked) == 1  # the bundle went through the verify hook before it was published
    later = ota.Device.provision(
        tmp_path / "fleet-device",
        model=MODEL,
        trusted_root=case.repo.trusted_root(1),
        keyring=w.pki.ca_cert,
        fit=w.factory_fit,
        version="1.1.0",
        security_version=2,
        group="fleet",
    )
    canary = ota.Device.provision(
        tmp_path / "canary-device",
        model=MODEL,
        trusted_root=case.repo.trusted_root(1),
        keyring=w.pki.ca_cert,
        fit=w.factory_fit,
        version="1.1.0",
        security_version=2,
        group="canary",
    )
    source = ota.Source.http(case.url)
    assert ota.update(canary, source, rauc=w.rauc, mksquashfs=w.mksquashfs, rec=w.rec).result == "installed"
    with pytest.raises(ota.UpdateRefused, match="no target qemu-virt-a57/groups/fleet/"):
        ota.update(later, source, rauc=w.rauc, mksquashfs=w.mksquashfs, rec=w.rec)
    assert [m.result for m in fleet.reconcile(case.repo, desired, checked.append)] == ["unchanged", "published"]
    assert ota.update(later, source, rauc=w.rauc, mksquashfs=w.mksquashfs, rec=w.rec).result == "installed"
