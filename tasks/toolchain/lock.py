"""tools.lock: the typed pins of every external tool, and how each may be installed.

Parsing only — no I/O beyond reading the file. Installing is tasks/toolchain/.
"""

from __future__ import annotations

import platform
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import InputError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
UPSTREAM = re.compile(r"^[0-9][A-Za-z0-9.+~]*$")  # Debian policy's upstream_version, without epoch or revision
PROFILES = ("local", "cluster", "release")


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str
    member: str = ""  # path inside a .tar.gz; empty for a bare binary
    source: str = ""  # where the checksum was read


@dataclass(frozen=True)
class GoRoute:
    module: str
    package: str
    ldflags: str = ""
    replace: tuple[str, ...] = ()  # "old=new@version": needs a throwaway module
    # build in a throwaway module even without replace lines: `go install pkg@version` asks the
    # proxy for the module's version list (its deprecation check) and fails where that is refused.
    # Not in repr: it changes how, not what, is built, and store.fingerprint() hashes the repr
    # (every other pin's cache entry stays valid).
    module_build: bool = field(default=False, repr=False)
    # a wrapper module the project keeps (a directory of the repo with go.mod + go.sum): built
    # there with `go build <package>`; the cache entry is keyed by its files instead (store.py),
    # so it stays out of the repr that store.fingerprint() hashes, like module_build
    source: str = field(default="", repr=False)

    @property
    def in_throwaway_module(self) -> bool:
        return not self.source and (bool(self.replace) or self.module_build)


@dataclass(frozen=True)
class AptRoute:
    package: str
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class PypiRoute:
    package: str
    lock: str  # hash-locked requirements file, relative to the repo root


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    why: str
    version_args: tuple[str, ...]
    binary: str
    profile: str = "local"
    note: str = ""
    downloads: dict[str, Download] = field(default_factory=dict)
    go: GoRoute | None = None
    apt: AptRoute | None = None
    pypi: PypiRoute | None = None

    @property
    def routes(self) -> list[str]:
        named = [("download", bool(self.downloads)), ("go", self.go), ("apt", self.apt), ("pypi", self.pypi)]
        return [name for name, present in named if present]


def current_platform() -> str:
    system = platform.system().lower()
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"{system}/{machine}"


def load(path: Path) -> dict[str, Pin]:
    """Parse and validate tools.lock; an error names the file and the exact field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: tools.lock is missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    if data.get("schema") != 1:
        raise InputError(f"{path}: schema: expected 1")
    tools = data.get("tools")
    if not isinstance(tools, dict) or not tools:
        raise InputError(f"{path}: tools: expected at least one [tools.<name>] table")
    return {name: _pin(path, name, body) for name, body in tools.items()}


def _pin(path: Path, name: str, body: Any) -> Pin:
    where = f"{path}: tools.{name}"

    def text(key: str, table: dict[str, Any] = body, required: bool = True) -> str:
        value = table.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise InputError(f"{where}.{key}: expected a non-empty string")
        return value

    if not isinstance(body, dict):
        raise InputError(f"{where}: expected a table")
    version_args = body.get("version_args", [])
    if not isinstance(version_args, list) or not all(isinstance(a, str) for a in version_args):
        raise InputError(f"{where}.version_args: expected a list of strings")
    profile = body.get("profile", "local")
    if profile not in PROFILES:
        raise InputError(f"{where}.profile: expected one of {', '.join(PROFILES)}")
    for table in ("download", "go", "apt", "pypi"):
        if table in body and not isinstance(body[table], dict):
            raise InputError(f"{where}.{table}: expected a table")
    for plat, entry in body.get("download", {}).items():
        if not isinstance(entry, dict):
            raise InputError(f"{where}.download.{plat}: expected a table with url and sha256")
    downloads: dict[str, Download] = {}
    for plat, entry in body.get("download", {}).items():
        sha = text("sha256", entry)
        if not SHA256.match(sha):
            raise InputError(f"{where}.download.{plat}.sha256: expected 64 lowercase hex digits")
        downloads[plat] = Download(text("url", entry), sha, text("member", entry, False), text("source", entry, False))
    go = body.get("go")
    apt = body.get("apt")
    pypi = body.get("pypi")
    pin = Pin(
        name=name,
        version=text("version"),
        why=text("why"),
        version_args=tuple(version_args),
        binary=text("binary", body, False) or name,
        profile=profile,
        note=text("note", body, False),
        downloads=downloads,
        go=_go_route(where, go) if go else None,
        apt=AptRoute(text("package", apt), tuple(apt.get("also", ()))) if apt else None,
        pypi=PypiRoute(text("package", pypi), text("lock", pypi)) if pypi else None,
    )
    if not pin.routes:
        raise InputError(f"{where}: no install route (download, go, apt or pypi)")
    if pin.apt and not UPSTREAM.match(pin.version):  # a minimum (ADR 0021): dpkg would read junk as 0
        raise InputError(f"{where}.version: {pin.version!r} is not an upstream version (1.2.3) an apt minimum can be")
    return pin


def _go_route(where: str, go: dict[str, Any]) -> GoRoute:
    for key in ("module", "package"):
        if not isinstance(go.get(key), str) or not go[key].strip():
            raise InputError(f"{where}.go.{key}: expected a non-empty string")
    module_build = go.get("module_build", False)
    if not isinstance(module_build, bool):
        raise InputError(f"{where}.go.module_build: expected true or false")
    source = go.get("source", "")
    if not isinstance(source, str) or source.startswith("/") or ".." in Path(source).parts:
        raise InputError(f"{where}.go.source: expected a directory of the repository (relative, no '..')")
    if source and go.get("replace"):
        raise InputError(f"{where}.go: a wrapper module (source) carries its replace lines in its own go.mod")
    return GoRoute(
        go["module"], go["package"], str(go.get("ldflags", "")), tuple(go.get("replace", ())), module_build, source
    )
