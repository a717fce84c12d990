"""The image source (.its) rendered from firmware/fit/image.its.in, and firmware/release.toml."""

from __future__ import annotations

import re

import pytest

from tasks.core.errors import InputError
from tasks.firmware import fit
from tests.support.project import REPO

TEMPLATE = (REPO / fit.TEMPLATE).read_text()
RELEASE = fit.Release("1.4.0", 7, 5, "qemu-virt-a57")


def test_every_placeholder_is_filled_and_the_data_is_named_relative() -> None:
    its = fit.render_its(TEMPLATE, RELEASE, "6.1.0-57-arm64")
    assert "${" not in its
    assert re.findall(r'/incbin/\("([^"]+)"\)', its) == ["kernel.gz", "kernel.dtb", "initramfs.cpio.gz"]
    assert 'firmware-version = "1.4.0";' in its and "security-version = <7>;" in its
    assert 'algo = "sha256,rsa3072";' in its and 'key-name-hint = "secure-iot-fw";' in its
    assert 'sign-images = "kernel", "fdt", "ramdisk";' in its


def test_rendering_is_a_pure_function_of_its_inputs() -> None:
    assert fit.render_its(TEMPLATE, RELEASE, "r") == fit.render_its(TEMPLATE, RELEASE, "r")
    assert fit.render_its(TEMPLATE, RELEASE, "r") != fit.render_its(
        TEMPLATE, fit.Release("1.4.1", 7, 5, "qemu-virt-a57"), "r"
    )


def test_an_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(InputError, match="placeholder 'signer'"):
        fit.render_its(TEMPLATE + "\n/* ${signer} */\n", RELEASE, "r")


def test_the_repository_release_is_valid_and_bootable() -> None:
    release = fit.parse_release((REPO / fit.RELEASE).read_text())
    assert release.security_version >= release.min_security_version >= 1  # rollback needs an older one


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('version = "1.0"\nsecurity_version = -1\nmin_security_version = 0', "security_version"),
        ('version = "1.0"\nsecurity_version = 1\nmin_security_version = true', "min_security_version"),
        ('version = "a \\"b"\nsecurity_version = 1\nmin_security_version = 1', "version"),
        ("version = ", "not valid TOML"),
        ('version = "1.0"\nsecurity_version = 1\nmin_security_version = 1', "hardware_model"),
        ('hardware_model = "A B"\nversion = "1.0"\nsecurity_version = 1\nmin_security_version = 1', "hardware_model"),
    ],
)
def test_a_bad_release_file_names_its_field(text: str, field: str) -> None:
    with pytest.raises(InputError, match=field):
        fit.parse_release(text)
