"""`nox -s release` and `nox -s fleet` sign nothing over a repository they cannot verify (issue #30).

Whoever can write files in the repository directory (the web host, a CI cache) but holds no key
plants a forged target, a high-numbered role version or a bad root; the next legitimate run
refuses with one line naming the file, exits non-zero, and leaves every file as it was. Real
firmware build, real RAUC bundle, real python-tuf (the fixtures of test_ota_release.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.firmware_build import FirmwareProject, built_firmware
from tests.support.project import REPO, pinned

pytestmark = pytest.mark.slow

MODEL_ROLE = "model-qemu-virt-a57"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> FirmwareProject:
    project = built_firmware(tmp_path_factory.mktemp("ota-trust"))
    shutil.copytree(REPO / "infra" / "ota", project.root / "infra" / "ota")
    result = project.run("release")
    assert result.returncode == 0, result.output[-4000:]
    return project


def _meta(project: FirmwareProject) -> Path:
    return project.out / "release" / "repository" / "metadata"


def _model_role(meta: Path) -> Path:
    """The model role file the current snapshot names."""
    timestamp = json.loads((meta / "timestamp.json").read_text())["signed"]
    snapshot = json.loads((meta / f"{timestamp['meta']['snapshot.json']['version']}.snapshot.json").read_text())
    return meta / f"{snapshot['signed']['meta'][f'{MODEL_ROLE}.json']['version']}.{MODEL_ROLE}.json"


def _forge_security_version(meta: Path) -> str:
    """The release's target with a forged security version: the role file edited, not re-signed."""
    path = _model_role(meta)
    doc = json.loads(path.read_text())
    doc["signed"]["targets"]["qemu-virt-a57/firmware.raucb"]["custom"]["security_version"] = 999
    path.write_text(json.dumps(doc))
    return f"{path.name}: not signed by the keys targets v"


def _plant_high_role_version(meta: Path) -> str:
    doc = json.loads(_model_role(meta).read_text())
    doc["signed"]["version"] = 999
    (meta / f"999.{MODEL_ROLE}.json").write_text(json.dumps(doc))
    return f"999.{MODEL_ROLE}.json: {MODEL_ROLE} v999, newer than the signed"


def _plant_bad_root(meta: Path) -> str:
    doc = json.loads((meta / "1.root.json").read_text())
    doc["signed"]["version"] = 2  # root v1's signatures over another root: they no longer verify
    (meta / "2.root.json").write_text(json.dumps(doc))
    return "2.root.json: not signed by the keys root v1 trusts for root"


def _repository(project: FirmwareProject) -> dict[str, bytes]:
    repo = project.out / "release" / "repository"
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("tamper", [_forge_security_version, _plant_high_role_version, _plant_bad_root])
def test_release_refuses_to_sign_over_a_repository_it_cannot_verify(
    released: FirmwareProject, tmp_path: Path, tamper: Callable[[Path], str]
) -> None:
    copy = released.copy(tmp_path / "copy")
    line = tamper(_meta(copy))
    before = _repository(copy)
    result = copy.run("release")
    assert result.returncode != 0 and line in result.output, result.output[-3000:]
    assert _repository(copy) == before, "a refused release changed the repository"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_fleet_refuses_to_sign_over_a_forged_model_role(released: FirmwareProject, tmp_path: Path) -> None:
    """A correctly signed desired state, rolled out over a repository whose model role was edited."""
    project = released.copy(tmp_path / "fleet")
    root, key = project.root, tmp_path / "maintainer"
    subprocess.run([pinned("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "m", "-f", key], check=True)
    pub = (tmp_path / "maintainer.pub").read_text().split()
    pinned_signers = tmp_path / "allowed_signers"  # the operator's pinned file, outside the project
    pinned_signers.write_text(f"maintainer@example.org {pub[0]} {pub[1]}\n")
    shutil.copytree(REPO / "fleet", root / "fleet")
    fit = released.stage("release")["details"]["custom"]["fit_digest"]
    desired = root / "fleet" / "desired.toml"
    desired.write_text(desired.read_text().replace('release = ""', f'release = "{fit}"'))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "maintainer@example.org")
    _git(root, "config", "user.name", "Maintainer")
    _git(root, "add", "fleet")
    sign = ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.program={pinned('ssh-keygen')}", "-c", f"user.signingkey={key}"]
    _git(root, *sign, "commit", "-S", "-q", "-m", "fleet: roll out")

    line = _forge_security_version(_meta(project))
    before = _repository(project)
    result = project.run("fleet", "--allowed-signers", str(pinned_signers))
    assert result.returncode != 0 and line in result.output, result.output[-3000:]
    assert _repository(project) == before, "a refused fleet run changed the repository"
