"""What the SPDX 3.0.1 twin is made from (issue #21, ADR 0019): the build's deployable files by
SHA-512, and the copyright notices of Debian copyright files."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from tasks.analysis.sbom_spdx3 import copyright_notices
from tasks.container import deployables
from tasks.core.errors import BuildError

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib

Files: *
Copyright: 1995-2022 Jean-loup Gailly and Mark Adler
License: Zlib

Files: debian/*
Copyright: 2000-2022 Mark Brown
 2023 Someone Else
License: Zlib
"""
FREE_FORM = "This is the Debian package of foo.\n\nCopyright (C) 2001 Foo Authors\nSee /usr/share/common-licenses.\n"


def test_debs_and_wheels_are_named_and_hashed_from_their_files(tmp_path: Path) -> None:
    deb = tmp_path / "diffutils_1%3a3.8-4_amd64.deb"
    wheel = tmp_path / "typing_extensions-4.15.0-py3-none-any.whl"
    deb.write_bytes(b"deb")
    wheel.write_bytes(b"wheel")
    found = {d.name: d for d in (*deployables.scan(tmp_path, "*.deb"), *deployables.scan(tmp_path, "*.whl"))}
    assert found["diffutils"].version == "1:3.8-4"  # apt quotes the epoch's colon
    assert found["diffutils"].sha512 == hashlib.sha512(b"deb").hexdigest()
    assert found["typing-extensions"].key == ("wheel", "typing-extensions", "4.15.0")
    deployables.write(tmp_path / "deployables.json", list(found.values()))
    assert deployables.read(tmp_path / "deployables.json")[("deb", "diffutils", "1:3.8-4")] == found["diffutils"]


def test_no_files_or_an_unnamed_file_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"no \*\.deb files"):
        deployables.scan(tmp_path, "*.deb")
    (tmp_path / "mystery.deb").write_bytes(b"")
    with pytest.raises(BuildError, match="cannot name its component"):
        deployables.scan(tmp_path, "*.deb")


def test_copyright_notices_from_dep5_and_free_form_files(tmp_path: Path) -> None:
    def entry(path: str, text: str) -> dict[str, object]:
        return {"location": {"path": path}, "contents": base64.b64encode(text.encode()).decode()}

    native = tmp_path / "image.syft.json"
    files = [
        entry("/usr/share/doc/zlib1g/copyright", DEP5),
        entry("/usr/share/doc/foo/copyright", FREE_FORM),
        entry("/usr/share/doc/bar/copyright", "no notice at all\n"),
    ]
    native.write_text(json.dumps({"files": files}))
    assert copyright_notices(native) == {
        "zlib1g": "1995-2022 Jean-loup Gailly and Mark Adler\n2000-2022 Mark Brown\n2023 Someone Else",
        "foo": "Copyright (C) 2001 Foo Authors",
    }
