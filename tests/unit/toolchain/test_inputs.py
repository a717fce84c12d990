"""tools.lock's pinned inputs: parsing, and the private apt sources derived from the machine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.toolchain.archive import private_sources
from tasks.toolchain.inputs import load_inputs
from tests.support.project import REPO

SHA = "ab" * 32


def test_the_repository_pins_every_firmware_input() -> None:
    pins = load_inputs(REPO / "tools.lock")
    assert {"linux-image", "linux-headers", "busybox", "u-boot-source"} <= set(pins)
    busybox = pins["busybox"]
    assert busybox.apt_spec == "busybox-static:arm64=1:1.35.0-4+deb12u1+b1"
    assert list(busybox.files) == ["busybox-static_1.35.0-4+deb12u1+b1_arm64.deb"]  # no epoch in the name
    assert pins["u-boot-source"].apt_spec == "u-boot=2023.01+dfsg-2+deb12u3"
    assert any(name.endswith(".dsc") for name in pins["u-boot-source"].files)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('kind = "rpm"', r"inputs\.x\.kind"),
        (f'kind = "deb"\nwhy = "w"\npackage = "p"\nversion = "1"\nsha256 = "{SHA}"', r"inputs\.x\.arch"),
        ('kind = "deb"\nwhy = "w"\npackage = "p"\nversion = "1"\narch = "all"\nsha256 = "nope"', "sha256 of p_1_all"),
        ('kind = "source"\nwhy = "w"\npackage = "p"\nversion = "1"\nfiles = { "p.tar.xz" = "x" }', r"\.files"),
    ],
)
def test_a_bad_input_pin_names_its_field(tmp_path: Path, body: str, field: str) -> None:
    (tmp_path / "tools.lock").write_text(f"schema = 1\n[inputs.x]\n{body}\n")
    with pytest.raises(InputError, match=field):
        load_inputs(tmp_path / "tools.lock")


def test_private_sources_keep_the_machines_bookworm_entries_only(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates trixie\n"
        "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n"
        "# a disabled one\nTypes: deb\nURIs: http://other.example\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb\nURIs: http://third.example\nSuites: nodistro\nComponents: main\n"
    )
    one_line = tmp_path / "extra.list"
    one_line.write_text("deb [arch=amd64 signed-by=/k2.gpg] http://security.example/d-s bookworm-security main\n")
    text = private_sources([deb822, one_line])
    stanzas = text.strip().split("\n\n")
    assert stanzas[0].splitlines() == [
        "Types: deb deb-src",
        "URIs: http://archive.example/debian",
        "Suites: bookworm bookworm-updates",
        "Components: main",
        "Signed-By: /usr/share/keyrings/k.gpg",
    ]
    assert "Suites: bookworm-security" in stanzas[1] and "Signed-By: /k2.gpg" in stanzas[1]
    assert len(stanzas) == 2  # the disabled entry and the non-bookworm suite are left out


def test_no_bookworm_entry_is_one_clear_error(tmp_path: Path) -> None:
    only = tmp_path / "x.list"
    only.write_text("deb http://archive.example/debian trixie main\n")
    with pytest.raises(InputError, match="no enabled Debian bookworm `deb` entry"):
        private_sources([only])
