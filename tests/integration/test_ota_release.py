"""`nox -s release` on a real firmware build: a RAUC bundle (real rauc) in a TUF repository (real
python-tuf), taken by a factory-fresh device online and from the offline bundle."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.firmware_build import FirmwareProject, built_firmware
from tests.support.project import REPO, pinned

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> FirmwareProject:
    project = built_firmware(tmp_path_factory.mktemp("ota-release"))
    shutil.copytree(REPO / "infra" / "ota", project.root / "infra" / "ota")
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
        ("model-qemu-virt-a57", ["qemu-virt-a57/*", "qemu-virt-a57/groups/*/*"], True)
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


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _commit_fleet(repo: Path, key: Path | None, canary: str, fleet: str, message: str) -> None:
    text = (REPO / "fleet" / "desired.toml").read_text()
    text = text.replace('name = "canary"\nwave = 1\nrelease = ""', f'name = "canary"\nwave = 1\nrelease = "{canary}"')
    text = text.replace('name = "fleet"\nwave = 2\nrelease = ""', f'name = "fleet"\nwave = 2\nrelease = "{fleet}"')
    (repo / "fleet" / "desired.toml").write_text(text)
    _git(repo, "add", "fleet")
    _git(repo, *(_signing(key) if key else []), "commit", *(["-S"] if key else []), "-q", "-m", message)


def _signing(key: Path) -> list[str]:
    return ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.program={pinned('ssh-keygen')}", "-c", f"user.signingkey={key}"]


def test_fleet_reconciles_a_signed_desired_state_wave_by_wave(released: FirmwareProject, tmp_path: Path) -> None:
    project = released.copy(tmp_path / "fleet")
    root = project.root
    keys = {}
    for name in ("maintainer", "stranger"):
        keys[name] = tmp_path / name
        subprocess.run(
            [pinned("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", keys[name]], check=True
        )
    pub = (tmp_path / "maintainer.pub").read_text().split()
    (root / ".github").mkdir(exist_ok=True)
    (root / ".github" / "allowed_signers").write_text(f"maintainer@example.org {pub[0]} {pub[1]}\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "maintainer@example.org")
    _git(root, "config", "user.name", "Maintainer")
    # the root commit holds the trust anchors its child, the first fleet change, is judged by (ADR 0024)
    _git(root, "add", "security-policy.yaml", ".github/allowed_signers")
    _git(root, *_signing(keys["maintainer"]), "commit", "-S", "-q", "-m", "the policy and its signers")
    shutil.copytree(REPO / "fleet", root / "fleet")
    fit = released.stage("release")["details"]["custom"]["fit_digest"]

    _commit_fleet(root, keys["maintainer"], fit, fit, "fleet: roll out to canary, then everyone")
    first = project.run("fleet")
    assert first.returncode == 0, first.output[-3000:]
    moves = {m["group"]: m["result"] for m in project.stage("fleet")["details"]["moves"]}
    assert moves == {"canary": "published", "fleet": "waiting for wave 1"}
    second = project.run("fleet")
    assert second.returncode == 0, second.output[-3000:]
    moves = {m["group"]: m["result"] for m in project.stage("fleet")["details"]["moves"]}
    assert moves == {"canary": "unchanged", "fleet": "published"}

    unknown = "sha256:" + "0" * 64
    _commit_fleet(root, keys["stranger"], unknown, fit, "fleet: a change signed by a key nobody allowed")
    refused = project.run("fleet")
    assert refused.returncode == 1 and "not in the allowed-signers file" in refused.output, refused.output[-3000:]
    _commit_fleet(root, keys["maintainer"], unknown, unknown, "fleet: a release nobody published")
    refused = project.run("fleet")
    assert refused.returncode == 1 and "no release of model qemu-virt-a57 carries this FIT" in refused.output


def test_update_stage_boots_the_release_from_the_other_slot(released: FirmwareProject) -> None:
    """`nox -s update`: factory boot from slot A, the release into slot B, U-Boot boots B, marked good."""
    result = released.run("update")
    assert result.returncode == 0, result.output[-4000:]
    details = released.stage("update")["details"]
    assert [(b["slot"], b["healthy"]) for b in details["boots"]] == [("A", True), ("B", True)]
    device = details["device"]
    assert (device["active"], device["slots"]["B"]["status"], device["pending"]) == ("B", "good", None)
    assert device["last_update"]["result"] == "installed"
