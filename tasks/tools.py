"""Talk 02 — the pinned toolchain: resolve every external tool from tools.lock.

Order per tool: the cache (receipt + sha256 re-checked) → a release download verified by
sha256 → `go install module@version` → apt-get (root, Debian). Wheel-shipped tools come
from the session's hash-locked virtualenv. A binary on PATH at another version is
reported and never used. The cache lives outside the checkout so clones and CI share it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess  # nosec B404 - version probes only; installs go through tasks.runner
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from tasks import atomic, report, runner
from tasks.context import Context
from tasks.errors import ToolError
from tasks.evidence import StageRecord, Verdict
from tasks.runner import Tool
from tasks.tools_lock import Download, Pin, current_platform, load

LOCK_NAME = "tools.lock"
RECEIPT = "receipt.json"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secure-iot"


def go_env() -> dict[str, str]:
    """Go builds share module and build caches outside the checkout, keyed by content."""
    root = cache_root() / "go"
    return {
        "GOMODCACHE": str(root / "mod"),
        "GOCACHE": str(root / "build"),
        "GOFLAGS": "-trimpath -buildvcs=false -modcacherw",
        "CGO_ENABLED": "0",
    }


def entry_dir(pin: Pin) -> Path:
    return cache_root() / "tools" / pin.name / pin.version


@dataclass
class Attempt:
    route: str
    outcome: str


class RouteUnavailable(Exception):
    """This route cannot deliver the tool here; the next route is tried."""


# --- cache -------------------------------------------------------------------------------


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
    if pin.pypi is not None:  # a relocked wheel tool is reinstalled, not trusted
        lock = root / pin.pypi.lock
        if not lock.is_file() or receipt.get("lock_sha256") != atomic.sha256_file(lock):
            return None
    actual = atomic.sha256_file(binary)
    if actual != receipt.get("sha256"):
        shutil.rmtree(directory, ignore_errors=True)
        raise ToolError(
            f"{pin.name} {pin.version}: cached binary {binary} has sha256 {actual}, its receipt says "
            f"{receipt.get('sha256')}; the entry was deleted, run `nox -s tools` to reinstall"
        )
    return Tool(pin.name, pin.version, binary, route=f"cache ({receipt['route']})", sha256=actual)


def _store(pin: Pin, built: Path, route: str, source: str, lock_sha256: str = "") -> Tool:
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


@contextlib.contextmanager
def _locked(pin: Pin) -> Iterator[None]:
    lock = cache_root() / "tools" / pin.name / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- download ----------------------------------------------------------------------------


def _opener() -> urllib.request.OpenerDirector:
    """Only https, file (tests, mirrors on disk) and plain http to loopback are allowed."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPSHandler(), urllib.request.FileHandler(), urllib.request.HTTPHandler()):
        opener.add_handler(handler)
    opener.add_handler(urllib.request.HTTPRedirectHandler())
    opener.add_handler(urllib.request.HTTPErrorProcessor())
    return opener


def _allowed(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme in ("https", "file") or (parsed.scheme == "http" and parsed.hostname == "127.0.0.1")


def fetch_verified(pin: Pin, download: Download, into: Path) -> Path:
    """Download to ``into``, check sha256; on mismatch delete it and fail hard."""
    if not _allowed(download.url):
        raise ToolError(f"{pin.name}: download URL {download.url} is not https (or file://, or http to 127.0.0.1)")
    target = into / ("download.tar.gz" if download.member else pin.binary)
    digest = hashlib.sha256()
    try:
        with _opener().open(download.url, timeout=60) as response, target.open("wb") as handle:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                handle.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise RouteUnavailable(f"unreachable ({exc})") from exc
    if digest.hexdigest() != download.sha256:
        target.unlink()
        raise ToolError(
            f"{pin.name} {pin.version}: checksum mismatch for {download.url}: expected sha256 "
            f"{download.sha256}, got {digest.hexdigest()}; the download was deleted"
        )
    if not download.member:
        return target
    with tarfile.open(target, "r:gz") as archive:
        archive.extract(download.member, into, filter="data")
    target.unlink()
    return into / download.member


def via_download(pin: Pin, rec: StageRecord | None, scratch: Path) -> Tool:
    download = pin.downloads.get(current_platform())
    if download is None:
        raise RouteUnavailable(f"no pinned checksum for {current_platform()}")
    return _store(pin, fetch_verified(pin, download, scratch), "download", download.url)


# --- go ----------------------------------------------------------------------------------


def via_go(pin: Pin, rec: StageRecord | None, scratch: Path) -> Tool:
    if pin.go is None:
        raise RouteUnavailable("no go route pinned")
    if shutil.which("go") is None:
        raise RouteUnavailable("Go is not installed")
    go = host_tool("go")
    env = go_env()
    ldflags = ["-ldflags", pin.go.ldflags] if pin.go.ldflags else []
    ref = f"{pin.go.module}@v{pin.version}"
    try:
        if not pin.go.replace:
            runner.run(
                rec,
                go,
                ["install", *ldflags, f"{pin.go.package}@v{pin.version}"],
                env={**env, "GOBIN": str(scratch)},
                timeout=3600,
            )
            built = scratch / Path(pin.go.package).name
        else:  # the tool's go.mod has replace directives: build inside a throwaway module
            module = scratch / "module"
            module.mkdir()
            runner.run(rec, go, ["mod", "init", f"secure-iot.local/build/{pin.name}"], env=env, cwd=module)
            for line in pin.go.replace:
                old, new = line.split("=", 1)
                runner.run(rec, go, ["mod", "edit", f"-replace={old}={new}"], env=env, cwd=module)
            runner.run(rec, go, ["get", ref], env=env, cwd=module, timeout=1800)
            built = scratch / pin.binary
            runner.run(
                rec, go, ["build", "-mod=mod", *ldflags, "-o", built, pin.go.package], env=env, cwd=module, timeout=3600
            )
    except ToolError as exc:
        raise RouteUnavailable(str(exc)) from exc
    return _store(pin, built, "go", ref)


# --- apt ---------------------------------------------------------------------------------


def installed_deb(package: str) -> str | None:
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return None
    proc = subprocess.run(  # nosec B603 - fixed argv
        [dpkg, "-W", "-f", "${db:Status-Abbrev}${Version}", package], capture_output=True, text=True, check=False
    )
    status = proc.stdout
    return status[3:].strip() if proc.returncode == 0 and status.startswith("ii") else None


def upstream(deb_version: str) -> str:
    """1:4.13+dfsg1-1+deb12u2 -> 4.13; 1.28.2+ds1-3 -> 1.28.2."""
    version = deb_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return version.split("+", 1)[0].split("~", 1)[0]


def _deb_tool(pin: Pin, deb_version: str, route: str) -> Tool:
    for directory in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        binary = Path(directory) / pin.binary
        if binary.is_file():
            packages = (pin.apt.package, *pin.apt.also) if pin.apt else ()
            return Tool(
                pin.name,
                pin.version,
                binary,
                route=f"{route} ({deb_version})",
                sha256=atomic.sha256_file(binary),
                packages=packages,
            )
    raise ToolError(f"{pin.name}: Debian package {pin.apt.package if pin.apt else '?'} has no {pin.binary}")


def from_system_package(pin: Pin) -> Tool | None:
    """An apt tool already installed at the pinned upstream version counts as cached.

    Only with every ``also`` package installed too: a tool whose data package was removed
    (ssg-debian under oscap) goes back through the apt route, which installs it.
    """
    if pin.apt is None:
        return None
    deb = installed_deb(pin.apt.package)
    if deb is None or any(installed_deb(extra) is None for extra in pin.apt.also):
        return None
    if upstream(deb) != pin.version:
        raise ToolError(
            f"{pin.name}: Debian package {pin.apt.package} is {deb}, tools.lock pins {pin.version}; "
            "update tools.lock (and its test) or install the pinned version"
        )
    return _deb_tool(pin, deb, "apt")


_apt_updated = False
APT_WAIT = ("-o", "DPkg::Lock::Timeout=600")  # another apt-get (a second session, unattended-upgrades) waits, not fails


def via_apt(pin: Pin, rec: StageRecord | None, scratch: Path) -> Tool:
    global _apt_updated
    if pin.apt is None:
        raise RouteUnavailable("no apt route pinned")
    apt_get = shutil.which("apt-get")
    if apt_get is None or not Path("/etc/debian_version").exists():
        raise RouteUnavailable("not a Debian/Ubuntu system")
    if os.geteuid() != 0:
        raise RouteUnavailable("apt-get needs root")
    apt = Tool("apt-get", "system", Path(apt_get), route="system")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not _apt_updated:
            runner.run(rec, apt, [*APT_WAIT, "update", "-qq"], env=env, timeout=900)
            _apt_updated = True
        runner.run(
            rec,
            apt,
            [*APT_WAIT, "install", "-y", "-qq", "--no-install-recommends", pin.apt.package, *pin.apt.also],
            env=env,
            timeout=1800,
        )
    except ToolError as exc:
        raise RouteUnavailable(str(exc)) from exc
    tool = from_system_package(pin)
    if tool is None:
        raise RouteUnavailable(f"apt-get did not install {pin.apt.package}")
    return tool


# --- pypi --------------------------------------------------------------------------------


def via_pypi(pin: Pin, rec: StageRecord | None, scratch: Path, root: Path) -> Tool:
    """A wheel-shipped tool gets its own virtualenv in the cache, from its hash lock."""
    if pin.pypi is None:
        raise RouteUnavailable("no pypi route pinned")
    lock = root / pin.pypi.lock
    if not lock.is_file():
        raise ToolError(f"{pin.name}: {lock} is missing; run `nox -s lock`")
    venv = entry_dir(pin) / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    python = Tool("python", sys.version.split()[0], Path(sys.executable), route="system")
    runner.run(rec, python, ["-m", "venv", venv], timeout=300)
    pip = Tool("pip", "venv", venv / "bin" / "python", route="system")
    try:
        runner.run(
            rec,
            pip,
            [
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "--no-deps",
                "-r",
                lock,
            ],
            timeout=1800,
        )
    except ToolError as exc:
        raise RouteUnavailable(str(exc)) from exc
    installed = metadata.distributions(path=[str(p) for p in venv.glob("lib/python*/site-packages")])
    versions = {_normal(d.metadata["Name"]): d.version for d in installed}
    if versions.get(_normal(pin.pypi.package)) != pin.version:
        raise ToolError(
            f"{pin.name}: {lock} installs {pin.pypi.package} {versions.get(_normal(pin.pypi.package))}, "
            f"tools.lock pins {pin.version}; make them agree"
        )
    shim = scratch / pin.binary
    shim.symlink_to(venv / "bin" / pin.binary)
    return _store(
        pin, shim, "pypi", f"{pin.pypi.package}=={pin.version} ({pin.pypi.lock})", lock_sha256=atomic.sha256_file(lock)
    )


def _normal(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- resolution --------------------------------------------------------------------------

Installer = Callable[[Pin, StageRecord | None, Path, Path], Tool]
INSTALLERS: dict[str, Installer] = {
    "download": lambda pin, rec, scratch, root: via_download(pin, rec, scratch),
    "go": lambda pin, rec, scratch, root: via_go(pin, rec, scratch),
    "apt": lambda pin, rec, scratch, root: via_apt(pin, rec, scratch),
    "pypi": via_pypi,
}


def manual_hint(pin: Pin) -> str:
    hints = []
    if pin.go:
        hints.append(f"go install {pin.go.package}@v{pin.version}")
    if pin.apt:
        hints.append(f"apt-get install {pin.apt.package} (version {pin.version})")
    for plat, download in pin.downloads.items():
        hints.append(f"{plat}: {download.url} (sha256 {download.sha256})")
    where = entry_dir(pin) / pin.binary
    return f"install by hand: {' or '.join(hints) or 'see tools.lock note'}, then place the binary at {where}"


def install(pin: Pin, root: Path, rec: StageRecord | None = None) -> Tool:
    """Resolve ``pin`` through its routes in order; one error listing every route tried."""
    with _locked(pin):
        cached = from_cache(pin, root) or from_system_package(pin)
        if cached is not None:
            return cached
        attempts: list[Attempt] = []
        for route in pin.routes:
            installer = INSTALLERS.get(route)
            if installer is None:
                continue
            report.console.print(f"  {pin.name} {pin.version}: trying {route}")
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


# Host prerequisites, not pinned: the machine's own git (and Go, for the go route). Their
# version is recorded in the evidence like any tool's.
HOST_TOOLS = {"git": ["--version"], "go": ["version"], "ssh-keygen": []}


def host_tool(name: str) -> Tool:
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name}: not found on PATH; install it with your system's package manager")
    version = "unknown"
    if HOST_TOOLS[name]:
        proc = subprocess.run([found, *HOST_TOOLS[name]], capture_output=True, text=True, check=False)  # nosec B603
        words = proc.stdout.split()
        version = next((w.removeprefix("go") for w in words if w[:1].isdigit() or w.startswith("go1")), "unknown")
    return Tool(name, version, Path(found), route="host")


def resolve(name: str, root: Path) -> Tool:
    """The pinned tool ``name``, installed if needed (the one entry point for stages)."""
    if name in HOST_TOOLS:
        return host_tool(name)
    pins = load(lock_path(root))
    if name not in pins:
        raise ToolError(f"{name}: not pinned in {lock_path(root)}; add it with its version and routes")
    return install(pins[name], root)


def stray_on_path(tool: Tool, pin: Pin, root: Path) -> str | None:
    """A different binary of the same name on PATH: report it, never use it."""
    ours = str(bin_dir(root))
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)
    found = shutil.which(pin.binary, path=search)
    if found is None or Path(found).resolve() == tool.path.resolve():
        return None
    try:
        proc = subprocess.run(  # nosec B603 - probing a binary's version, no shell
            [found, *pin.version_args], capture_output=True, text=True, timeout=20, check=False
        )
        shown = (proc.stdout or proc.stderr).strip().splitlines()[:1]
    except (OSError, subprocess.TimeoutExpired):
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


def selected(pins: dict[str, Pin], names: Sequence[str], everything: bool) -> list[Pin]:
    unknown = [n for n in names if n not in pins]
    if unknown:
        raise ToolError(f"not pinned in tools.lock: {', '.join(unknown)} (pinned: {', '.join(pins)})")
    if names:
        return [pins[n] for n in names]
    return [p for p in pins.values() if everything or p.profile == "local"]


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s tools", description="install and verify the pinned tools")
    parser.add_argument("names", nargs="*", help="only these tools (default: every local-profile tool)")
    parser.add_argument("--all", action="store_true", help="also the cluster and release profiles")
    parser.add_argument("--json", action="store_true", help="print {tool: {version, path, route, sha256}}")
    args = parser.parse_args(argv)
    pins = load(lock_path(ctx.root))
    rec.add_input(lock_path(ctx.root), "application/toml")
    resolved: dict[str, Tool] = {}
    failures: list[str] = []
    for pin in selected(pins, args.names, args.all):
        try:
            tool = install(pin, ctx.root, rec)
        except ToolError as exc:
            failures.append(str(exc))
            continue
        resolved[pin.name] = tool
        rec.tools[pin.name] = pin.version
        link(ctx.root, tool)
        stray = stray_on_path(tool, pin, ctx.root)
        if stray:
            report.console.print(f"  [yellow]{pin.name}: {stray}[/]")
            rec.details.setdefault("ignored_on_path", []).append(stray)
    rec.details["tools"] = {name: _describe(tool) for name, tool in resolved.items()}
    report.tools_table(resolved, pins)
    from tasks import vulndb  # the DB is an input like any tool: report its state

    if "grype" in resolved:
        rec.details["grype_db"] = vulndb.report_status(resolved["grype"])
    if args.json:
        print(json.dumps({name: _describe(tool) for name, tool in resolved.items()}, indent=2, sort_keys=True))
    if failures:
        raise ToolError(" | ".join(failures))
    return "pass"


def _describe(tool: Tool) -> dict[str, str]:
    return {"version": tool.version, "path": str(tool.path), "route": tool.route, "sha256": tool.sha256}
