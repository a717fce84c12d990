"""A `--subject` run is recorded beside the image's, never over it."""

from __future__ import annotations

from tasks.catalogue import CATALOGUE, PROFILES
from tasks.pipeline import record_name, step_record


def test_the_image_keeps_the_stage_name() -> None:
    assert record_name("sign", []) == "sign"
    assert record_name("sign", ["--subject", "image"]) == "sign"
    assert record_name("verify", ["--image", "r@sha256:" + "0" * 64]) == "verify"


def test_another_subject_gets_its_own_key() -> None:
    assert record_name("sign", ["--subject", "firmware"]) == "sign:firmware"
    assert record_name("sbom", ["--subject=firmware"]) == "sbom:firmware"
    assert step_record("verify --subject firmware") == "verify:firmware"


def test_every_profile_step_names_a_stage() -> None:
    for steps in PROFILES.values():
        for step in steps:
            assert step.split()[0] in CATALOGUE, step
    assert PROFILES["device"][0] == "keys" and PROFILES["device"][-1] == "boot"
