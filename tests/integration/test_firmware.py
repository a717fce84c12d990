"""nox -s firmware and nox -s boot with the real tools: mkimage, dtc, QEMU, swtpm, U-Boot itself.

One build per session (the ``firmware`` fixture); tests that change something work on a copy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    FIRMWARE_BLOB_MEDIA_TYPES,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    ITS_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from tasks.firmware import fdt, fit, measurements
from tests.support.firmware_build import FirmwareProject, firmware_project, resign_reference_values
from tests.support.project import pinned

pytestmark = pytest.mark.slow

KEY = Path(".keys/firmware/secure-iot-fw.key")
REPRODUCED = (FIT_MEDIA_TYPE, CONTROL_DTB_MEDIA_TYPE, INITRAMFS_MEDIA_TYPE, ITS_MEDIA_TYPE, BOOTLOADER_MEDIA_TYPE)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_output_is_in_the_evidence_by_digest_and_media_type(firmware: FirmwareProject) -> None:
    record = firmware.stage("firmware")
    assert record["verdict"] == "pass"
    types = {o["media_type"] for o in record["outputs"]}
    assert {*FIRMWARE_BLOB_MEDIA_TYPES, ITS_MEDIA_TYPE, REFERENCE_VALUES_MEDIA_TYPE} <= types
    for out in record["outputs"]:
        assert not Path(out["name"]).is_absolute() and out["name"].startswith("out/firmware/"), out
        assert sha256(firmware.root / out["name"]) == out["digest"], out["name"]
    inputs = {i["name"]: i for i in record["inputs"]}
    assert any(n.startswith("linux-image-") and n.endswith("_arm64.deb") for n in inputs)  # pinned, by digest
    assert "firmware/u-boot/secure-iot.config" in inputs and "firmware/release.toml" in inputs
    commands = [c["argv"][0] for c in record["commands"]]
    assert {"mkimage", "qemu-system-aarch64", "swtpm", "fdtput", "dtc"} <= set(commands)


def test_reference_values_follow_from_the_signed_files(firmware: FirmwareProject) -> None:
    image = firmware.output("firmware", FIT_MEDIA_TYPE).read_bytes()
    control = fdt.parse(firmware.output("firmware", CONTROL_DTB_MEDIA_TYPE).read_bytes()).root
    reference = json.loads(firmware.output("firmware", REFERENCE_VALUES_MEDIA_TYPE).read_text())
    assert reference["pcrs"]["9"] == hashlib.sha256(bytes(32) + hashlib.sha256(image).digest()).hexdigest()
    # The key in the control DTB is the one in .keys/firmware, required for configurations.
    private = load_pem_private_key((firmware.root / KEY).read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 3072
    modulus = private.public_key().public_numbers().n.to_bytes(384, "big")
    key = control.find(f"/signature/key-{measurements.KEY_NAME}")
    assert key.get("rsa,modulus") == modulus and fdt.text(key, "required") == "conf"
    digest = hashlib.sha256(modulus).hexdigest()
    assert reference["pcrs"]["8"] == measurements.extend(measurements.ZERO, digest)
    # The signed configuration carries the release; the control DTB its minimum.
    release = fit.parse_release((firmware.root / fit.RELEASE).read_text())
    conf = fdt.parse(image).root.find("/configurations/conf-1")
    assert fdt.text(conf, "firmware-version") == release.version == reference["firmware_version"]
    assert fdt.cell(conf, "security-version") == release.security_version
    assert fdt.cell(control.find("/config"), "secure-iot,min-security-version") == release.min_security_version
    assert not control.find("/config").has("bootcmd")  # U-Boot's built-in policy is not overridden


def test_two_builds_give_one_fit_and_the_key_is_kept(firmware: FirmwareProject, tmp_path: Path) -> None:
    key = firmware.root / KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = {m: sha256(firmware.output("firmware", m)) for m in REPRODUCED}
    again = firmware.copy(tmp_path / "again")
    for media in REPRODUCED:
        again.output("firmware", media).unlink()
    key_bytes = key.read_bytes()
    result = again.run("firmware")
    assert result.returncode == 0, result.output[-3000:]
    assert {m: sha256(again.output("firmware", m)) for m in REPRODUCED} == before
    assert (again.root / KEY).read_bytes() == key_bytes  # existing key used, not replaced
    assert again.stage("firmware")["details"]["u_boot"]["from_cache"] is True


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    project = firmware_project(tmp_path)
    (project.root / KEY).parent.mkdir(parents=True)
    (project.root / KEY).write_text("placeholder: the mode is refused before the content is read\n")
    os.chmod(project.root / KEY, 0o644)
    result = project.run("firmware")
    assert result.returncode == 2
    assert "secure-iot-fw.key is readable by group or others; chmod 600 it" in result.stderr


def test_the_genuine_firmware_boots_verified_and_measured(firmware: FirmwareProject) -> None:
    result = firmware.run("boot")
    assert result.returncode == 0, result.output[-3000:]
    record = firmware.stage("boot")
    assert record["details"]["mode"] == "genuine"
    assert set(record["details"]["checks"].values()) == {"pass"} and len(record["details"]["checks"]) >= 10
    reference = json.loads(firmware.output("firmware", REFERENCE_VALUES_MEDIA_TYPE).read_text())
    assert record["details"]["pcrs"]["8"] == reference["pcrs"]["8"]
    assert record["details"]["pcrs"]["9"] == reference["pcrs"]["9"]
    assert {i["media_type"] for i in record["inputs"]} >= {FIT_MEDIA_TYPE, CONTROL_DTB_MEDIA_TYPE}
    console = (firmware.out / "boot" / "console.log").read_text()
    assert "Verifying Hash Integrity ... sha256,rsa3072:secure-iot-fw+ OK" in console
    for process in record["details"]["processes"]:
        for name, pid in process["pids"].items():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # stopped: nothing of the boot is left running
            assert process["stopped"][name]


def test_boot_refuses_firmware_changed_after_its_stage(firmware: FirmwareProject, tmp_path: Path) -> None:
    changed = firmware.copy(tmp_path / "changed")
    image = changed.output("firmware", FIT_MEDIA_TYPE)
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF
    image.write_bytes(bytes(data))
    result = changed.run("boot")
    assert result.returncode == 2
    assert "out/firmware/image.fit: changed since its stage recorded it" in result.stderr


def verify_reference_values(project: FirmwareProject, key: Path) -> subprocess.CompletedProcess[str]:
    """The offline check firmware/README.md documents, as a consumer (#14's fleet server) runs it."""
    bundle = project.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE)
    trusted_root = project.root / "infra/policies/sigstore/trusted-root-keymode.json"
    argv = [
        pinned("cosign"),
        "verify-blob-attestation",
        "--bundle",
        bundle,
        "--new-bundle-format",
        "--trusted-root",
        trusted_root,
        "--key",
        key,
        "--insecure-ignore-tlog=true",
        "--type",
        REFERENCE_VALUES_PREDICATE_TYPE,
        project.output("firmware", FIT_MEDIA_TYPE),
    ]
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)


def signed_statement(project: FirmwareProject) -> dict[str, object]:
    bundle = json.loads(project.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE).read_text())
    return dict(json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"])))


def test_reference_values_are_a_signed_statement_about_the_fit(firmware: FirmwareProject) -> None:
    done = verify_reference_values(firmware, firmware.root / ".keys/cosign.pub")
    assert done.returncode == 0, done.stderr
    statement = signed_statement(firmware)
    assert statement["predicateType"] == REFERENCE_VALUES_PREDICATE_TYPE
    fit_digest = sha256(firmware.output("firmware", FIT_MEDIA_TYPE)).removeprefix("sha256:")
    assert statement["subject"] == [{"name": "image.fit", "digest": {"sha256": fit_digest}}]
    assert statement["predicate"] == json.loads(firmware.output("firmware", REFERENCE_VALUES_MEDIA_TYPE).read_text())


def test_boot_refuses_reference_values_edited_after_signing(firmware: FirmwareProject, tmp_path: Path) -> None:
    edited = firmware.copy(tmp_path / "edited")
    bundle_path = edited.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE)
    bundle = json.loads(bundle_path.read_text())
    statement = signed_statement(edited)
    statement["predicate"]["pcrs"]["8"] = "ab" * 32  # type: ignore[index]  # an attacker's golden value
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    bundle_path.write_text(json.dumps(bundle))
    assert verify_reference_values(edited, edited.root / ".keys/cosign.pub").returncode != 0
    result = edited.run("boot")
    assert result.returncode == 2, result.output[-3000:]
    assert "reference-values.sigstore.json: not verified for image.fit: its signature does not verify" in result.stderr
    assert "qemu-system-aarch64" not in result.output  # refused before anything booted


def test_boot_refuses_reference_values_signed_by_another_key(firmware: FirmwareProject, tmp_path: Path) -> None:
    other = firmware.copy(tmp_path / "other-key")
    keys = tmp_path / "other-keys"
    resign_reference_values(other, keys)  # the same FIT and values, signed by another key
    assert verify_reference_values(other, keys / "cosign.pub").returncode == 0
    result = other.run("boot")  # the project's own key: the statement is not ours
    assert result.returncode == 2, result.output[-3000:]
    assert "its signature does not verify with" in result.stderr and ".keys/cosign.pub" in result.stderr
