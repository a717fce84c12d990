"""`nox -s release` on a real firmware build: a RAUC bundle (real rauc) in a TUF repository (real
python-tuf), taken by a factory-fresh device online and from the offline bundle."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware_build import FirmwareProject, built_firmware

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> FirmwareProject:
    project = built_firmware(tmp_path_factory.mktemp("ota-release"))
    shutil.copytree(REPO / "ota", project.root / "ota")
    result = project.run("release", "--offline-bundle")
    assert result.returncode == 0, result.output[-4000:]
    return project


def test_release_publishes_a_bundle_both_kinds_of_device_install(released: FirmwareProject) -> None:
    rec = released.stage("release")
    firmware = released.stage("firmware")["details"]
    custom = rec["details"]["custom"]
    assert custom["firmware_version"] == firmware["firmware_version"]
    assert custom["security_version"] == firmware["security_version"]
    assert custom["hardware_model"] == "qemu-virt-a57"
    # the firmware evidence has no SLSA provenance today: the target says so, and invents none
    assert custom["slsa_provenance"] is None and "no SLSA provenance" in custom["slsa_provenance_note"]
    checks = {
        c["name"]: c["passed"] for c in json.loads((released.out / "release" / "report.json").read_text())["checks"]
    }
    assert checks == {"custom metadata": True, "online update": True, "offline update": True}
    meta = released.out / "release" / "repository" / "metadata"
    root = json.loads((meta / "1.root.json").read_text())["signed"]
    assert root["consistent_snapshot"] is True and root["roles"]["root"]["threshold"] == 2
    assert len(root["roles"]["root"]["keyids"]) == 3
    targets = json.loads((meta / f"{rec['details']['versions']['targets']}.targets.json").read_text())["signed"]
    assert [(r["name"], r["paths"], r["terminating"]) for r in targets["delegations"]["roles"]] == [
        ("model-qemu-virt-a57", ["qemu-virt-a57/*"], True)
    ]
    assert targets["targets"] == {}  # the top-level role delegates; only a model's role lists firmware
    keys = released.root / ".keys" / "ota"
    private = [*(keys / "tuf").glob("*.pem"), *(keys / "rauc").glob("*.key")]
    assert len(private) == 9  # root-1..3, targets, snapshot, timestamp, model-qemu-virt-a57; the CA and signer
    assert all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in private)


def test_release_again_is_idempotent_and_keeps_keys(released: FirmwareProject) -> None:
    keys = {p: p.read_bytes() for p in (released.root / ".keys" / "ota").rglob("*") if p.is_file()}
    before = released.stage("release")["details"]["versions"]
    result = released.run("release")
    assert result.returncode == 0, result.output[-4000:]
    after = released.stage("release")["details"]
    assert after["published"].startswith("unchanged")
    assert after["versions"]["targets"] == before["targets"]
    assert after["versions"]["timestamp"] == before["timestamp"] + 1
    assert {p: p.read_bytes() for p in keys} == keys


def test_release_refuses_a_fit_changed_since_the_firmware_stage(released: FirmwareProject, tmp_path: Path) -> None:
    copy = released.copy(tmp_path / "copy")
    fit = copy.output("firmware", "application/vnd.secure-iot.firmware.fit")
    fit.write_bytes(fit.read_bytes() + b"\0")
    result = copy.run("release")
    assert result.returncode != 0
    assert "changed since its stage recorded it" in result.output
