"""The deployable files an image was made from, by SHA-512: build evidence for the SBOM.

BSI TR-03183-2 asks, per component, for the file name and SHA-512 of its deployable form.
Neither Debian's indexes (SHA-256) nor app/requirements.lock (SHA-256) carry a SHA-512, so
the build computes it from the very files it installed: the ``.deb`` files mmdebstrap
downloaded for the base root filesystem and the wheels pip installed into the image. The
manifest (``deployables.json``) is a build output; the ``sbom`` stage reads it by digest from
the evidence and matches each entry to a component by ecosystem, name and version. A
component whose deployable file the build did not see gets no hash: it is counted, not faked.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote

from tasks.core import atomic
from tasks.core.errors import BuildError, InputError

DEB = "deb"
WHEEL = "wheel"
# apt names an archive <name>_<version, ':' quoted as %3a>_<arch>.deb
_DEB_NAME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9.+-]*)_(?P<version>[^_]+)_(?P<arch>[a-z0-9-]+)\.deb$")
# PEP 427: {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
_WHEEL_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-.+\.whl$")


@dataclass(frozen=True)
class Deployable:
    """One file the build installed: the deployable form of one component."""

    ecosystem: str  # deb | wheel
    name: str  # Debian package name, or the PEP 503-normalised distribution name
    version: str  # as the package manager spells it (a Debian epoch included)
    filename: str
    sha512: str  # hex
    sha256: str  # hex

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.ecosystem, self.name, self.version)


def normalise(name: str) -> str:
    """PEP 503: the name a Python distribution is matched by."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _digests(path: Path) -> tuple[str, str]:
    sha512, sha256 = hashlib.sha512(), hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha512.update(chunk)
            sha256.update(chunk)
    return sha512.hexdigest(), sha256.hexdigest()


def of_file(path: Path) -> Deployable:
    """A downloaded ``.deb`` or wheel, named and hashed; a file of another kind is refused."""
    if (deb := _DEB_NAME.match(path.name)) is not None:
        ecosystem, name, version = DEB, deb["name"], unquote(deb["version"])
    elif (wheel := _WHEEL_NAME.match(path.name)) is not None:
        ecosystem, name, version = WHEEL, normalise(wheel["name"]), wheel["version"]
    else:
        raise BuildError(f"{path}: neither a Debian archive nor a wheel file name; cannot name its component")
    sha512, sha256 = _digests(path)
    return Deployable(ecosystem, name, version, path.name, sha512, sha256)


def scan(directory: Path, pattern: str) -> list[Deployable]:
    """Every file matching ``pattern`` in ``directory``; none at all is a build error (fail closed)."""
    found = [of_file(p) for p in sorted(directory.glob(pattern)) if p.is_file()]
    if not found:
        raise BuildError(f"{directory}: no {pattern} files; the build recorded no deployables")
    return found


def write(path: Path, deployables: list[Deployable]) -> None:
    rows = sorted((asdict(d) for d in deployables), key=lambda r: (r["ecosystem"], r["name"], r["version"]))
    atomic.write_json(path, {"deployables": rows})


def read(path: Path) -> dict[tuple[str, str, str], Deployable]:
    """The manifest, keyed by (ecosystem, name, version)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["deployables"]
        found = [Deployable(**row) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a deployables manifest ({exc})") from exc
    return {d.key: d for d in found}
