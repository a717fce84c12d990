"""The firmware through the image's supply-chain stages (`--subject firmware`), on a registry of its
own: SBOM, scan, provenance, then oras pushes it as one OCI artifact that cosign signs and attests,
and `verify` checks it with the image's Rego policy. Then the refusals: another signer, and a
reference-values bundle edited after signing.

Builds on the session's firmware build (tests/support/firmware_build.py); everything runs on copies.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    FIRMWARE_ARTIFACT_TYPE,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from tasks.core.processes import free_port
from tests.support.firmware_build import FirmwareProject, resign_reference_values, with_supply_chain

pytestmark = pytest.mark.slow

CHAIN = ("sbom", "scan", "provenance", "sign", "verify")


class Signed:
    def __init__(self, project: FirmwareProject, work: Path) -> None:
        self.project = project
        self.env = {"SECURE_IOT_REGISTRY_PORT": str(free_port()), "SECURE_IOT_REGISTRY_DIR": str(work / "registry")}

    def run(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.project.run(*args, env={**self.env, **(env or {})})

    def evidence(self) -> dict[str, Any]:
        return dict(json.loads((self.project.out / "evidence.json").read_text())["stages"])


@pytest.fixture(scope="module")
def signed(firmware: FirmwareProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    work = tmp_path_factory.mktemp("firmware-chain")
    chain = Signed(with_supply_chain(firmware.copy(work / "project")), work)
    try:
        for stage in CHAIN:
            result = chain.run(stage, "--subject", "firmware")
            assert result.returncode == 0, f"{stage}: {result.output[-3000:]}"
        yield chain
    finally:
        chain.run("registry", "stop")


def test_the_firmware_artifact_is_signed_attested_and_verified(signed: Signed) -> None:
    stages = signed.evidence()
    assert {"sbom:firmware", "scan:firmware", "provenance:firmware", "sign:firmware", "verify:firmware"} <= set(stages)
    assert not {"sbom", "scan", "provenance", "sign", "verify"} & set(stages)  # the image's keys are untouched
    verify = stages["verify:firmware"]
    assert verify["verdict"] == "pass"
    assert set(verify["details"]["checks"]) >= {
        "signature",
        "attestation slsaprovenance1",
        "attestation spdxjson",
        "attestation vuln",
        f"attestation {REFERENCE_VALUES_PREDICATE_TYPE}",
    }
    # one OCI artifact, by digest: its artifactType and one layer per blob with the blob's media type
    ref = stages["sign:firmware"]["details"]["artifact"]
    manifest = json.loads((signed.project.out / "sign" / "firmware.manifest.json").read_text())
    assert ref.endswith("@" + next(o["digest"] for o in stages["sign:firmware"]["outputs"] if o["kind"] == "oci"))
    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE and manifest["artifactType"] == FIRMWARE_ARTIFACT_TYPE
    layers = {layer["mediaType"]: layer["digest"] for layer in manifest["layers"]}
    firmware_outputs = {o["media_type"]: o["digest"] for o in stages["firmware"]["outputs"]}
    for media in (
        FIT_MEDIA_TYPE,
        BOOTLOADER_MEDIA_TYPE,
        CONTROL_DTB_MEDIA_TYPE,
        INITRAMFS_MEDIA_TYPE,
        REFERENCE_VALUES_MEDIA_TYPE,
    ):
        assert layers[media] == firmware_outputs[media], media


def test_sbom_names_the_pinned_components_and_provenance_the_blobs(signed: Signed) -> None:
    spdx = json.loads((signed.project.out / "sbom" / "firmware.spdx.json").read_text())
    names = {p["name"]: p for p in spdx["packages"]}
    assert {"u-boot-qemu", "busybox-static", "tpm_tis"} <= set(names)
    assert any(n.startswith("linux-image-") for n in names)
    purls = [r["referenceLocator"] for r in names["u-boot-qemu"].get("externalRefs", [])]
    assert any(p.startswith("pkg:deb/debian/u-boot-qemu@2023.01") for p in purls), purls
    statement = json.loads((signed.project.out / "provenance" / "firmware.provenance.json").read_text())
    firmware_outputs = {o["media_type"]: o["digest"] for o in signed.evidence()["firmware"]["outputs"]}
    assert [f"sha256:{s['digest']['sha256']}" for s in statement["subject"]] == [
        firmware_outputs[m] for m in (FIT_MEDIA_TYPE, BOOTLOADER_MEDIA_TYPE, INITRAMFS_MEDIA_TYPE)
    ]
    deps = {d.get("name", d["uri"]) for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert {"firmware/u-boot/secure-iot.config", "firmware/fit/image.its.in", "tools.lock", "mkimage"} <= deps
    assert any(d.startswith("linux-image-") and d.endswith(".deb") for d in deps)
    assert any(d.startswith("u-boot_") and d.endswith(".dsc") for d in deps)


def test_firmware_signed_with_another_key_is_refused(signed: Signed, tmp_path: Path) -> None:
    other = Signed(signed.project.copy(tmp_path / "other"), tmp_path)  # its own registry
    resign_reference_values(other.project, tmp_path / "other-keys")  # the attacker's own statement too
    try:
        # the same firmware and records; pushed, signed and attested with the other key
        result = other.run("sign", "--subject", "firmware", env={"SECURE_IOT_KEY_DIR": str(tmp_path / "other-keys")})
        assert result.returncode == 0, result.output[-3000:]
        result = other.run("verify", "--subject", "firmware")  # with the project's own key
    finally:
        other.run("registry", "stop")
    assert result.returncode == 1, result.output[-3000:]
    checks = other.evidence()["verify:firmware"]["details"]["checks"]
    assert checks["signature"] == "fail"
    report = json.loads((other.project.out / "verify" / "firmware.report.json").read_text())
    details = {c["name"]: c["detail"] for c in report["checks"] if not c["passed"]}
    assert "not verified" in details["signature"]
    assert "signature does not verify with the expected key" in details["attestation slsaprovenance1"]


def test_sign_refuses_reference_values_edited_after_signing(signed: Signed, tmp_path: Path) -> None:
    edited = Signed(signed.project.copy(tmp_path / "edited"), tmp_path)
    bundle_path = edited.project.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE)
    bundle = json.loads(bundle_path.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["pcrs"]["9"] = "cd" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    bundle_path.write_text(json.dumps(bundle))
    result = edited.run("sign", "--subject", "firmware")
    assert result.returncode == 2, result.output[-3000:]
    assert "reference-values.sigstore.json: not verified for image.fit: its signature does not verify" in result.stderr
    assert "oras" not in result.output  # refused before anything was pushed
