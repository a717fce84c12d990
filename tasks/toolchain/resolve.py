"""Talk 02 — the pinned toolchain: resolve every external tool from tools.lock.

Order per tool: the cache (receipt + sha256 re-checked) → a release download verified by
sha256 → `go install module@version` → apt-get (root, Debian). Wheel-shipped tools come
from the session's hash-locked virtualenv. A binary on PATH at another version is
reported and never used. The cache lives outside the checkout so clones and CI share it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tasks.core import atomic, runner
from tasks.core.cache import cache_root
from tasks.core.console import console
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.toolchain.apt import from_system_package, via_apt
from tasks.toolchain.download import via_download
from tasks.toolchain.go import via_go
from tasks.toolchain.host import HOST_TOOLS, host_tool
from tasks.toolchain.lock import Pin, load
from tasks.toolchain.pypi import via_pypi
from tasks.toolchain.store import Attempt, RouteUnavailable, entry_dir, from_cache, locked

LOCK_NAME = "tools.lock"


# --- resolution --------------------------------------------------------------------------

Installer = Callable[[Pin, StageRecord, Path, Path], Tool]
INSTALLERS: dict[str, Installer] = {
    "download": lambda pin, rec, scratch, root: via_download(pin, rec, scratch),
    "go": via_go,
    "apt": lambda pin, rec, scratch, root: via_apt(pin, rec, scratch),
    "pypi": via_pypi,
}


def manual_hint(pin: Pin) -> str:
    hints = []
    if pin.go and pin.go.source:
        hints.append(f"(cd {pin.go.source} && go build -o {pin.binary} {pin.go.package})")
    elif pin.go:
        hints.append(f"go install {pin.go.package}@v{pin.version}")
    if pin.apt:
        hints.append(f"apt-get install {pin.apt.package} (version {pin.version} or newer)")
    for plat, download in pin.downloads.items():
        hints.append(f"{plat}: {download.url} (sha256 {download.sha256})")
    where = entry_dir(pin) / pin.binary
    return f"install by hand: {' or '.join(hints) or 'see tools.lock note'}, then place the binary at {where}"


def install(pin: Pin, root: Path, rec: StageRecord) -> Tool:
    """Resolve ``pin`` through its routes in order; one error listing every route tried."""
    with locked(pin):
        cached = from_cache(pin, root) or from_system_package(pin)
        if cached is not None:
            return cached
        attempts: list[Attempt] = []
        for route in pin.routes:
            installer = INSTALLERS.get(route)
            if installer is None:
                continue
            console.print(f"  {pin.name} {pin.version}: trying {route}")
            staging = entry_dir(pin).parent / ".staging"
            staging.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=staging) as scratch:
                try:
                    return installer(pin, rec, Path(scratch), root)
                except RouteUnavailable as exc:
                    attempts.append(Attempt(route, str(exc)))
        tried = "; ".join(f"{a.route}: {a.outcome}" for a in attempts) or "no route applies"
        raise ToolError(f"{pin.name} {pin.version}: not installable ({tried}). {manual_hint(pin)}")


def lock_path(root: Path) -> Path:
    return root / LOCK_NAME


def resolve(name: str, root: Path, rec: StageRecord) -> Tool:
    """The pinned tool ``name``, installed if needed; an install's commands go into ``rec``."""
    if name in HOST_TOOLS:
        return host_tool(name)
    pins = load(lock_path(root))
    if name not in pins:
        raise ToolError(f"{name}: not pinned in {lock_path(root)}; add it with its version and routes")
    return install(pins[name], root, rec)


def stray_on_path(tool: Tool, pin: Pin, root: Path) -> str | None:
    """A different binary of the same name on PATH: report it, never use it."""
    ours = str(bin_dir(root))
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)
    found = shutil.which(pin.binary, path=search)
    if found is None or Path(found).resolve() == tool.path.resolve():
        return None
    try:
        proc = runner.probe(Tool(pin.name, "unknown", Path(found), route="path"), pin.version_args, timeout=20)
        shown = (proc.stdout or proc.stderr).strip().splitlines()[:1]
    except ToolError:
        shown = []
    return f"{found} ({shown[0] if shown else 'version unknown'}) is on PATH and is not used"


def bin_dir(root: Path) -> Path:
    """A directory of symlinks to this lock's resolved tools; sessions put it first on PATH."""
    digest = atomic.sha256_file(lock_path(root))[:12] if lock_path(root).exists() else "none"
    return cache_root() / "tools" / "bin" / digest


def put_first_on_path(root: Path) -> None:
    """Sessions see the pinned tools first; anything else on PATH comes after them."""
    directory = str(bin_dir(root))
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != directory]
    os.environ["PATH"] = os.pathsep.join([directory, *rest])


def link(root: Path, tool: Tool) -> None:
    directory = bin_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / tool.path.name
    tmp = directory / f".{tool.path.name}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(tool.path)
    os.replace(tmp, target)


def selected(pins: dict[str, Pin], names: Sequence[str], everything: bool, profiles: Sequence[str] = ()) -> list[Pin]:
    unknown = [n for n in names if n not in pins]
    if unknown:
        raise ToolError(f"not pinned in tools.lock: {', '.join(unknown)} (pinned: {', '.join(pins)})")
    if names:
        return [pins[n] for n in names]
    if profiles:
        return [p for p in pins.values() if p.profile in profiles]
    return [p for p in pins.values() if everything or p.profile == "local"]
