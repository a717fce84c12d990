"""tools.lock's [inputs.*]: files a build consumes (not tools it runs), each pinned by sha256.

Two kinds, both from Debian's archive: one binary package (``kind = "deb"``, any architecture,
e.g. the arm64 kernel the firmware boots) and one source package (``kind = "source"``: the .dsc
and its tarballs). Parsing only; tasks/toolchain/archive.py fetches them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tasks.core.errors import InputError
from tasks.toolchain.lock import SHA256

KINDS = ("deb", "source")


@dataclass(frozen=True)
class PinnedInput:
    name: str
    kind: Literal["deb", "source"]
    package: str
    version: str  # the Debian version, epoch included
    why: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 (a deb has one)
    arch: str = ""  # deb only: arm64, amd64 or all

    @property
    def apt_spec(self) -> str:
        """What apt-get download / source is asked for."""
        if self.kind == "source":
            return f"{self.package}={self.version}"
        return f"{self.package}{'' if self.arch == 'all' else ':' + self.arch}={self.version}"

    @property
    def deb(self) -> str:
        """The .deb's file name (apt writes an epoch as %3a; the pin names the file without it)."""
        return deb_name(self.package, self.version, self.arch)


def deb_name(package: str, version: str, arch: str) -> str:
    return f"{package}_{version.split(':', 1)[-1]}_{arch}.deb"


def load_inputs(path: Path) -> dict[str, PinnedInput]:
    """The [inputs.<name>] tables of tools.lock; an error names the exact field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read the pinned inputs: {exc}") from exc
    tables = data.get("inputs", {})
    if not isinstance(tables, dict):
        raise InputError(f"{path}: inputs: expected [inputs.<name>] tables")
    return {name: _input(path, name, body) for name, body in tables.items()}


def _input(path: Path, name: str, body: Any) -> PinnedInput:
    where = f"{path}: inputs.{name}"
    if not isinstance(body, dict):
        raise InputError(f"{where}: expected a table")

    def text(key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}.{key}: expected a non-empty string")
        return value

    kind = body.get("kind")
    if kind not in KINDS:
        raise InputError(f"{where}.kind: expected one of {', '.join(KINDS)}")
    arch = text("arch") if kind == "deb" else ""
    listed = {deb_name(text("package"), text("version"), arch): text("sha256")} if kind == "deb" else body.get("files")
    if not isinstance(listed, dict) or not any(str(n).endswith(".deb" if kind == "deb" else ".dsc") for n in listed):
        raise InputError(f"{where}.files: expected {{file name = sha256}} including the .dsc")
    files: dict[str, str] = dict(listed)
    for file, digest in files.items():
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise InputError(f"{where}: sha256 of {file}: expected 64 lowercase hex digits")
    return PinnedInput(name, kind, text("package"), text("version"), text("why"), files, arch)
