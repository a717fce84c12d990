"""The tool cache: one directory per pinned version.

A receipt records the binary's sha256 (re-checked on every use) and the pin that made it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.core import atomic
from tasks.core.cache import cache_root
from tasks.core.cache import locked as cache_locked
from tasks.core.errors import ToolError
from tasks.core.runner import Tool
from tasks.toolchain.lock import Pin

RECEIPT = "receipt.json"


def entry_dir(pin: Pin) -> Path:
    return cache_root() / "tools" / pin.name / pin.version


@dataclass
class Attempt:
    route: str
    outcome: str


class RouteUnavailable(Exception):
    """This route cannot deliver the tool here; the next route is tried."""


def fingerprint(pin: Pin) -> str:
    """What the pin says about how to obtain the tool; a changed pin invalidates the cache entry."""
    routes = {
        "downloads": {k: asdict(v) for k, v in pin.downloads.items()},
        "go": pin.go,
        "apt": pin.apt,
        "pypi": pin.pypi,
        "version": pin.version,
        "binary": pin.binary,
    }
    return hashlib.sha256(json.dumps(routes, default=str, sort_keys=True).encode()).hexdigest()


def from_cache(pin: Pin, root: Path) -> Tool | None:
    directory = entry_dir(pin)
    receipt_path, binary = directory / RECEIPT, directory / pin.binary
    if not receipt_path.is_file() or not binary.is_file():
        return None
    receipt = json.loads(receipt_path.read_text(encoding="utf-8"))
    if "pin" not in receipt:  # an entry from before pins were fingerprinted: adopt it once
        receipt["pin"] = fingerprint(pin)
        atomic.write_json(receipt_path, receipt)
    if receipt["pin"] != fingerprint(pin):
        return None  # tools.lock changed how this version is obtained: reinstall it
    repo_files = repository_inputs(pin, root)
    if repo_files is not None and receipt.get("lock_sha256") != repo_files:
        return None  # a relocked wheel tool or an edited wrapper module is rebuilt, not trusted
    actual = atomic.sha256_file(binary)
    if actual != receipt.get("sha256"):
        shutil.rmtree(directory, ignore_errors=True)
        raise ToolError(
            f"{pin.name} {pin.version}: cached binary {binary} has sha256 {actual}, its receipt says "
            f"{receipt.get('sha256')}; the entry was deleted, run `nox -s tools` to reinstall"
        )
    return Tool(pin.name, pin.version, binary, route=f"cache ({receipt['route']})", sha256=actual)


def repository_inputs(pin: Pin, root: Path) -> str | None:
    """sha256 over the files of the repository an install reads (a wheel tool's hash lock, a Go
    wrapper module's go.mod, go.sum and sources); None when the install reads none of them."""
    if pin.pypi is not None:
        lock = root / pin.pypi.lock
        return atomic.sha256_file(lock) if lock.is_file() else ""
    if pin.go is not None and pin.go.source:
        directory = root / pin.go.source
        files = sorted(
            p for p in directory.rglob("*") if p.is_file() and (p.suffix == ".go" or p.name in GO_MODULE_FILES)
        )
        if not files:
            return ""
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.relative_to(directory).as_posix()}\0{atomic.sha256_file(path)}\n".encode())
        return digest.hexdigest()
    return None


GO_MODULE_FILES = ("go.mod", "go.sum")


def store(pin: Pin, built: Path, route: str, source: str, lock_sha256: str = "") -> Tool:
    directory = entry_dir(pin)
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / pin.binary
    if not built.is_symlink():
        built.chmod(0o755)
    os.replace(built, binary)
    digest = atomic.sha256_file(binary)
    receipt = {
        "name": pin.name,
        "version": pin.version,
        "route": route,
        "source": source,
        "sha256": digest,
        "pin": fingerprint(pin),
    }
    if lock_sha256:
        receipt["lock_sha256"] = lock_sha256
    atomic.write_json(directory / RECEIPT, receipt)
    return Tool(pin.name, pin.version, binary, route=route, sha256=digest)


def locked(pin: Pin) -> contextlib.AbstractContextManager[None]:
    """One installer per tool at a time."""
    waiting = f"{pin.name}: being installed by another process (the pipeline's background build?); waiting for it"
    return cache_locked(cache_root() / "tools" / pin.name / ".lock", waiting)
