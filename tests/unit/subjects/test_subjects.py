"""A subject is chosen once from `--subject`; the image keeps the pipeline's original names."""

from __future__ import annotations

from tasks import pipeline
from tasks.subjects import FIRMWARE, IMAGE, SUBJECTS


def test_the_choices_are_the_subjects_by_name() -> None:
    assert tuple(SUBJECTS) == ("image", "firmware")
    assert SUBJECTS["image"] is IMAGE and SUBJECTS["firmware"] is FIRMWARE


def test_evidence_keys_are_the_pipelines() -> None:
    """What a subject calls a stage's record is what the pipeline records the run under."""
    for subject in SUBJECTS.values():
        for stage in ("sbom", "scan", "provenance", "sign", "verify"):
            assert subject.names.record(stage) == pipeline.record_name(stage, ["--subject", subject.names.name])
    assert IMAGE.names.record("scan") == "scan" and FIRMWARE.names.record("scan") == "scan:firmware"


def test_files_in_a_shared_directory_are_qualified_except_the_images() -> None:
    assert IMAGE.names.file("grype") == "grype" and FIRMWARE.names.file("grype") == "firmware.grype"
    assert FIRMWARE.names.file("report.json") == "firmware.report.json"


def test_only_the_image_has_a_root_filesystem_to_attest_and_verify_names_what_it_checked() -> None:
    assert IMAGE.names.rootfs and not FIRMWARE.names.rootfs
    assert (IMAGE.verified_as, FIRMWARE.verified_as) == ("image", "artifact")
