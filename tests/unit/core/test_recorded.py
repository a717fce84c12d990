"""What one stage hands another is read typed, and fails closed in one line that names the command to rerun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.core.errors import EvidenceError
from tasks.core.evidence import EvidenceStore, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import MANIFEST_MEDIA_TYPE
from tasks.core.recorded import (
    BuiltFirmware,
    BuiltImage,
    ImageBuild,
    MalformedRecord,
    PublishedRelease,
    Scanned,
    SignedFirmware,
    SignedImage,
)

DIGEST = "sha256:" + "ab" * 32
BASE_DIGEST = "sha256:" + "cd" * 32
IMAGE = f"127.0.0.1:5000/secure-iot-app@{DIGEST}"
BASE = f"127.0.0.1:5000/secure-iot-base@{BASE_DIGEST}"
BUILD = {
    "image": IMAGE,
    "digest": DIGEST,
    "tag": "3f2c1a0",
    "base_image": BASE,
    "base_source": "mmdebstrap",
    "source_date_epoch": 1700000000,
    "revision": "3f2c1a0" * 5 + "abcde",
    "source_url": "urn:secure-iot:local",
}
FIRMWARE = {
    "hardware_model": "qemu-virt-a57",
    "firmware_version": "1.4.0",
    "security_version": 3,
    "source_date_epoch": 1700000000,
    "u_boot": {"cache_key": "k" * 16, "sha256": "0" * 64},
}


def record(
    store: EvidenceStore,
    name: str,
    details: dict[str, Any],
    pushed: tuple[str, str] | None = None,
    verdict: Verdict = "pass",
    tools: dict[str, str] | None = None,
) -> None:
    with store.open_stage(name, store.path.parent) as rec:
        if pushed:
            rec.add_oci(*pushed, MANIFEST_MEDIA_TYPE)
        rec.details.update(details)
        rec.tools.update(tools or {})
        rec.verdict = verdict


@pytest.fixture
def store(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence.json")


def test_the_built_image(store: EvidenceStore) -> None:
    record(store, "build", BUILD, (IMAGE, DIGEST))
    built = ImageBuild.read(store)
    assert built.image == ImageRef.parse(IMAGE) and str(built.image) == IMAGE
    assert (built.tag, built.base_image, built.base_source) == ("3f2c1a0", ImageRef.parse(BASE), "mmdebstrap")
    assert (built.source_date_epoch, built.source_url) == (1700000000, "urn:secure-iot:local")
    assert BuiltImage.read(store) == BuiltImage(built.image)


def test_most_readers_need_only_the_pushed_manifest(store: EvidenceStore) -> None:
    record(store, "build", {}, (IMAGE, DIGEST))  # what a test's build record holds
    assert BuiltImage.read(store).image == ImageRef.parse(IMAGE)
    with pytest.raises(MalformedRecord, match=r"has nothing as details.tag"):
        ImageBuild.read(store)


@pytest.mark.parametrize("base", ["debian:bookworm", ""])
def test_a_base_not_by_digest_is_refused_not_left_out_of_the_provenance(store: EvidenceStore, base: str) -> None:
    record(store, "build", {**BUILD, "base_image": base}, (IMAGE, DIGEST))
    with pytest.raises(MalformedRecord, match=r"as details.base_image, not an image by digest: rerun `nox -s build`"):
        ImageBuild.read(store)


def test_no_build_says_which_stage_to_run(store: EvidenceStore) -> None:
    with pytest.raises(EvidenceError, match=r"run `nox -s build` first"):
        BuiltImage.read(store)
    record(store, "build", BUILD, (IMAGE, DIGEST), verdict="fail")
    with pytest.raises(EvidenceError, match="did not pass"):
        BuiltImage.read(store)


@pytest.mark.parametrize(
    ("details", "pushed", "says"),
    [
        (BUILD, ("127.0.0.1:5000/secure-iot-app:latest", DIGEST), "not an image by digest"),  # a tag
        (BUILD, (IMAGE, BASE_DIGEST), f"records its digest as {BASE_DIGEST}"),  # name and digest disagree
        (BUILD, None, "recorded no output of type"),  # nothing pushed
        ({k: v for k, v in BUILD.items() if k != "tag"}, (IMAGE, DIGEST), "has nothing as details.tag"),
        ({**BUILD, "tag": ""}, (IMAGE, DIGEST), "has an empty details.tag"),  # would skip verify's tag check
        ({**BUILD, "source_date_epoch": "1700000000"}, (IMAGE, DIGEST), "details.source_date_epoch, not of type int"),
    ],
)
def test_a_malformed_build_fails_closed(
    store: EvidenceStore, details: dict[str, Any], pushed: tuple[str, str] | None, says: str
) -> None:
    record(store, "build", details, pushed)
    with pytest.raises(EvidenceError, match="build") as refused:
        ImageBuild.read(store)
    assert says in str(refused.value) and "\n" not in str(refused.value)
    if pushed is not None:
        assert isinstance(refused.value, MalformedRecord) and "rerun `nox -s build`" in str(refused.value)


def test_the_built_firmware(store: EvidenceStore) -> None:
    record(store, "firmware", FIRMWARE)
    assert BuiltFirmware.read(store) == BuiltFirmware("1.4.0", 3, 1700000000, "k" * 16, "qemu-virt-a57")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"security_version": True}, "bool True as details.security_version"),  # a bool is no version number
        ({"security_version": "3"}, "str '3' as details.security_version"),
        ({"u_boot": "cached"}, "no mapping as details.u_boot"),
        ({"u_boot": {}}, "nothing as details.u_boot.cache_key"),
    ],
)
def test_a_malformed_firmware_record_names_the_key(store: EvidenceStore, change: dict[str, Any], says: str) -> None:
    record(store, "firmware", {**FIRMWARE, **change})
    with pytest.raises(MalformedRecord, match="rerun `nox -s firmware`") as refused:
        BuiltFirmware.read(store)
    assert says in str(refused.value)


def test_what_was_signed(store: EvidenceStore) -> None:
    record(store, "sign", {"image": IMAGE})
    assert SignedImage.read(store).image == ImageRef.parse(IMAGE)
    record(store, "sign", {"image": "127.0.0.1:5000/secure-iot-app:latest"})
    with pytest.raises(MalformedRecord, match=r"details.image, not an image by digest: rerun `nox -s sign`"):
        SignedImage.read(store)


def test_the_signed_firmware_names_the_subject_command(store: EvidenceStore) -> None:
    with pytest.raises(EvidenceError, match=r"run `nox -s sign -- --subject firmware` first"):
        SignedFirmware.read(store)
    artifact = f"127.0.0.1:5000/secure-iot-firmware@{DIGEST}"
    record(store, "sign:firmware", {"tag": "1.4.0"}, (artifact, DIGEST))
    assert SignedFirmware.read(store) == SignedFirmware(ImageRef.parse(artifact), "1.4.0")
    for details in ({}, {"tag": ""}):
        record(store, "sign:firmware", details, (artifact, DIGEST))
        with pytest.raises(MalformedRecord, match=r"rerun `nox -s sign -- --subject firmware`"):
            SignedFirmware.read(store)


def test_the_published_release(store: EvidenceStore) -> None:
    record(store, "release", {"custom": {"security_version": 4, "firmware_version": "1.4.0"}})
    assert PublishedRelease.read(store).security_version == 4


def test_the_scan_names_its_db(store: EvidenceStore) -> None:
    db = {"source": "demo", "valid": True, "built": "2026-11-30T00:00:00Z"}
    record(store, "scan:firmware", {"db": db}, tools={"grype": "0.80.0"})
    scanned = Scanned.read(store, "scan:firmware")
    assert (scanned.grype, scanned.db_source, scanned.db_built) == ("0.80.0", "demo", "2026-11-30T00:00:00Z")
    assert scanned.started <= scanned.finished
    record(store, "scan", {})
    with pytest.raises(MalformedRecord, match=r"no mapping as details.db: rerun `nox -s scan`"):
        Scanned.read(store)
