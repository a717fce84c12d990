"""Pinned inputs from Debian's archive: `apt-get download` / `apt-get source`, sha256-checked, cached.

apt runs with a private state under the cache (its own source list, package lists and
architectures): the machine's apt configuration is read, never changed — no foreign
architecture is added, no deb-src line is written. The sources are the machine's own (or
SECURE_IOT_APT_SOURCES), so the project names no mirror. Every file is refused unless its
sha256 equals the pin, on download and on every later use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.core import atomic, runner
from tasks.core.cache import cache_root, locked
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import Artifact, StageRecord
from tasks.core.media_types import DEBIAN_PACKAGE_MEDIA_TYPE, DEBIAN_SOURCE_MEDIA_TYPE
from tasks.core.runner import Tool
from tasks.toolchain.apt import APT_WAIT
from tasks.toolchain.inputs import PinnedInput, load_inputs

APT_ETC = Path("/etc/apt")
SUITE = "bookworm"  # the inputs are bookworm's packages, whatever else the machine lists


def apt_sources(etc: Path = APT_ETC) -> list[Path]:
    """The machine's own package sources, read the way apt reads them; the project names no mirror.

    sources.list and every sources.list.d/*.list and *.sources file (apt ignores other names),
    or SECURE_IOT_APT_SOURCES (files separated by the path separator) to choose explicitly.
    """
    chosen = os.environ.get("SECURE_IOT_APT_SOURCES")
    if chosen:
        paths = [Path(p) for p in chosen.split(os.pathsep) if p]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise InputError(f"SECURE_IOT_APT_SOURCES: no such file: {', '.join(missing)}")
        return paths
    listed = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    paths = [p for p in listed if p.is_file() and _has_entries(p)]
    paths += [p for p in sorted((etc / "sources.list.d").glob("*.sources")) if p.is_file() and _has_entries(p)]
    if not paths:
        raise InputError(
            f"{etc}: no package sources (sources.list or sources.list.d/*.list|*.sources); "
            "set SECURE_IOT_APT_SOURCES to a Debian sources file"
        )
    return paths


def _has_entries(path: Path) -> bool:
    lines = (line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return any(line and not line.startswith("#") for line in lines)


ONE_LINE = re.compile(r"^deb\s+(?:\[(?P<options>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)\s*(?P<components>.*)$")


def _stanzas(path: Path) -> Iterator[dict[str, str]]:
    """The enabled `deb` entries of one sources file (deb822 or one-line), as deb822 fields."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".sources":
        for line in text.splitlines():
            if match := ONE_LINE.match(line.split("#", 1)[0].strip()):
                options = dict(o.split("=", 1) for o in (match["options"] or "").split() if "=" in o)
                entry = {"Types": "deb", "URIs": match["uri"], "Suites": match["suite"]}
                entry["Components"] = match["components"].strip()
                if "signed-by" in options:
                    entry["Signed-By"] = options["signed-by"]
                yield entry
        return
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line[:1].isspace() and key:  # a continuation line (an inline Signed-By key block)
                fields[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip()
        if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes").lower() != "no":
            yield fields


def private_sources(paths: list[Path]) -> str:
    """deb + deb-src stanzas for the bookworm suites of the machine's own entries (same URIs, same keys)."""
    out = []
    for path in paths:
        for fields in _stanzas(path):
            suites = [s for s in fields.get("Suites", "").split() if s == SUITE or s.startswith(SUITE + "-")]
            if not suites or "URIs" not in fields:
                continue
            lines = ["Types: deb deb-src", f"URIs: {fields['URIs']}", f"Suites: {' '.join(suites)}"]
            lines += [f"{k}: {fields[k]}" for k in ("Components", "Signed-By") if fields.get(k)]
            out.append("\n".join(lines))
    if not out:
        raise InputError(
            f"no enabled Debian {SUITE} `deb` entry in {', '.join(map(str, paths))}: the pinned inputs are "
            f"{SUITE}'s packages; set SECURE_IOT_APT_SOURCES to a sources file listing {SUITE}"
        )
    return "\n\n".join(out) + "\n"


def native_arch() -> str:
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        raise ToolError("dpkg: not found; pinned Debian inputs are fetched on Debian/Ubuntu only")
    done = runner.probe(Tool("dpkg", "system", Path(dpkg), route="system"), ["--print-architecture"])
    if done.returncode != 0 or not done.stdout.strip():
        raise ToolError(f"dpkg --print-architecture failed: {done.tail()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class AptState:
    """apt-get with its own sources, lists, cache and architectures, under the input cache."""

    directory: Path
    architectures: tuple[str, ...]

    def options(self) -> list[str]:
        d = self.directory
        archs = [a for arch in self.architectures for a in ("-o", f"APT::Architectures::={arch}")]
        return [
            *APT_WAIT,
            *("-o", "APT::Sandbox::User=root", "-o", "Acquire::Languages=none"),
            *("-o", f"Dir::Etc::SourceList={d / 'none.list'}", "-o", f"Dir::Etc::SourceParts={d / 'sources.list.d'}"),
            *("-o", f"Dir::State::Lists={d / 'lists'}", "-o", f"Dir::Cache={d / 'cache'}"),
            *("-o", f"Dir::State::status={d / 'none.list'}"),
            *archs,
        ]


_updated: set[Path] = set()


def _apt_get() -> Tool:
    found = shutil.which("apt-get")
    if found is None:
        raise ToolError("apt-get: not found; the pinned Debian inputs are fetched with apt on Debian/Ubuntu")
    return Tool("apt-get", "system", Path(found), route="system")


def _prepare(state: AptState, rec: StageRecord) -> None:
    d = state.directory
    for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    atomic.write_text(d / "none.list", "")
    atomic.write_text(d / "sources.list.d" / "debian.sources", private_sources(apt_sources()))
    if d not in _updated:  # once per process, and only when something has to be downloaded
        runner.run(rec, _apt_get(), [*state.options(), "update", "-qq"], timeout=900)
        _updated.add(d)


def _check(pin: PinnedInput, path: Path, expected: str) -> None:
    actual = atomic.sha256_file(path)
    if actual != expected:
        path.unlink()
        raise InputError(
            f"{pin.name}: {path.name} has sha256 {actual}, tools.lock pins {expected}; the file was deleted"
        )


def _download(pin: PinnedInput, state: AptState, into: Path, rec: StageRecord) -> None:
    _prepare(state, rec)
    with tempfile.TemporaryDirectory(dir=into, prefix=".fetch-") as tmp:
        verb = ["source", "--download-only"] if pin.kind == "source" else ["download"]
        runner.run(rec, _apt_get(), [*state.options(), *verb, pin.apt_spec], cwd=Path(tmp), timeout=1800)
        got = {p.name: p for p in Path(tmp).iterdir() if p.is_file()}
        if pin.kind == "deb":  # apt writes an epoch as %3a: take the one .deb it produced
            debs = [p for p in got.values() if p.suffix == ".deb"]
            if len(debs) != 1:
                raise InputError(f"{pin.name}: apt-get download {pin.apt_spec} gave {len(debs)} .deb files")
            got = {pin.deb: debs[0]}
        for file, digest in pin.files.items():
            if file not in got:
                raise InputError(f"{pin.name}: apt-get {verb[0]} {pin.apt_spec} did not produce {file}")
            _check(pin, got[file], digest)
            os.replace(got[file], into / file)


@dataclass(frozen=True)
class Fetched:
    """One file of a pinned input, in the cache, its sha256 checked against the pin."""

    path: Path
    sha256: str


def fetch(name: str, lock: Path, rec: StageRecord) -> dict[str, Fetched]:
    """The pinned input ``name`` of ``lock`` (tools.lock): file name -> file, each sha256-checked.

    Downloaded once into the cache; every use re-hashes the files, and each is recorded as an
    input of ``rec`` by its pinned digest.
    """
    pins = load_inputs(lock)
    if name not in pins:
        raise InputError(f"{name}: not pinned in {lock} ([inputs.{name}] with its sha256)")
    pin = pins[name]
    root = cache_root() / "inputs"
    into = root / pin.name / pin.version.replace(":", "%3a")
    with locked_dir(into):
        if any(not (into / file).is_file() for file in pin.files):
            archs = sorted({native_arch()} | {p.arch for p in pins.values() if p.arch not in ("", "all")})
            _download(pin, AptState(root / ".apt", tuple(archs)), into, rec)
        for file, digest in pin.files.items():
            _check(pin, into / file, digest)
    media = {True: DEBIAN_PACKAGE_MEDIA_TYPE, False: DEBIAN_SOURCE_MEDIA_TYPE}
    for file, digest in pin.files.items():
        rec.inputs.append(Artifact(file, f"sha256:{digest}", media[file.endswith(".deb")]))
    return {file: Fetched(into / file, digest) for file, digest in pin.files.items()}


def locked_dir(directory: Path) -> contextlib.AbstractContextManager[None]:
    return locked(directory / ".lock")
