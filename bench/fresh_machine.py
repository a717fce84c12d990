"""Run the README's Quickstart on a fresh Debian bookworm machine (a chroot) and time each command.

    python bench/fresh_machine.py                      (as root; the README's commands)
    python bench/fresh_machine.py --command './bootstrap.sh nox -s sast'
    nox -s fresh-machine -- --keep-root

What a "fresh machine" is here: a minimal Debian bookworm root (mmdebstrap, variant minbase)
with only what the README's Quickstart says such a machine has: python3, python3-venv, git,
ca-certificates, and Go >= 1.24 (the host's, bind-mounted read-only at its own GOROOT). The
root is cached as a tarball under ${XDG_CACHE_HOME:-~/.cache}/secure-iot/fresh-machine/, keyed
by its recipe (the host's apt sources and apt options included); every run extracts a fresh
copy. The host's network configuration (resolv.conf, hosts, pip.conf, extra CA certificates,
PIP_*/SSL_*/REQUESTS_*/CURL_*/UV_* and proxy variables, the Go env file) is copied in at run
time and never written into the repository.

The commands run, in order, in a clean `git clone` of the repository's HEAD commit (uncommitted
changes are not tested), each in its own private mount namespace, with a fresh HOME and
SECURE_IOT_REGISTRY_PORT set to a free port (the chroot shares the host's network). The
commands are read from the README's Quickstart ```sh block, so this checks exactly what the
README promises; --command replaces them. Every process left in the chroot (the local
registry outlives nox by design) is killed, and the root is removed, whatever happened.

Prints one PASS/FAIL line per command with its wall time (on failure, the command and the
tail of its output) and writes out/fresh-machine/result.json. Exit code: 0 if every command
passed and nothing was left behind, 1 otherwise, 2 if the check itself could not run.

Standalone on purpose (stdlib only): it tests the project from outside, and takes from tasks/ only
tasks/core/processes.py (stdlib only) for a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tasks.core import processes

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
VARIANT = "minbase"
# What the README's Quickstart says a fresh machine has (Go comes from the host, see go_setup).
INCLUDE = ("python3", "python3-venv", "git", "ca-certificates")
# --point-release-root: also installed from the point release, so the root holds builds older than
# tools.lock's minimums (postgresql-15 here; openssl comes with ca-certificates); result.json
# records the versions the root had (older_than_pins), dpkg's too.
OLDER = ("postgresql-15",)
GO_MINIMUM = (1, 24)
SRC = "/src/secure-iot"  # where the clean clone appears inside the root
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV_PREFIXES = ("PIP_", "SSL_", "REQUESTS_", "CURL_", "UV_")
ENV_NAMES = ("CI", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
APT_DATE_OPTIONS = re.compile(r"Check-Valid-Until|Check-Date", re.IGNORECASE)
TAIL_LINES = 40
GO_CACHE_IN_ROOT = "/root/.cache/secure-iot/go"  # HOME=/root; tasks/core/cache.py + tasks/toolchain/go.py
# Measured at 5097db5: the Quickstart's two commands peaked at ~20 GB (the root, its tools and caches,
# the suite's temporary files); a run that fills the disk dies mid-suite with unrelated-looking errors.
MIN_FREE_BYTES = 25 * 10**9
AVOID_PORTS = frozenset({5000})  # the project's default registry port, likely busy on the host


class CheckError(Exception):
    """The check itself could not run (not a failure of the project under test)."""


@dataclass(frozen=True)
class HostGo:
    goroot: Path
    goenv: Path | None
    version: str


@dataclass
class CommandResult:
    command: str
    exit_code: int
    seconds: float
    log: str
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


@dataclass
class Cleanup:
    killed: list[int] = field(default_factory=list)
    kept: str = ""
    left_behind: list[str] = field(default_factory=list)
    total_seconds: float = 0.0


@dataclass
class Report:
    repo: str
    commit: str
    registry_port: int
    host_go: str = ""
    go_cache: str = "cold"
    root: dict[str, object] = field(default_factory=dict)
    commands: list[CommandResult] = field(default_factory=list)
    cleanup: Cleanup = field(default_factory=Cleanup)
    error: str = ""

    def passed(self) -> bool:
        clean = not self.cleanup.left_behind
        return not self.error and bool(self.commands) and all(c.passed for c in self.commands) and clean

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["commands"] = [{**asdict(c), "passed": c.passed} for c in self.commands]
        data["passed"] = self.passed()
        return data


# --- the README ---------------------------------------------------------------------------


def quickstart_commands(readme: str) -> list[str]:
    """The commands of the README's Quickstart ```sh block, in order, without `# comments`."""
    parts = readme.split("\n## Quickstart", 1)
    if len(parts) != 2:
        raise CheckError("README.md has no '## Quickstart' section")
    section = parts[1].split("\n## ", 1)[0]
    match = re.search(r"^```(?:sh|bash|shell)[ \t]*\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    if match is None:
        raise CheckError("README.md's Quickstart has no ```sh block")
    commands = []
    for raw in match.group(1).splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()  # a comment starts at a '#' after whitespace
        if line:
            commands.append(line)
    if not commands:
        raise CheckError("README.md's Quickstart ```sh block has no commands")
    return commands


# --- small helpers ------------------------------------------------------------------------


def run(argv: Sequence[str | Path], env: dict[str, str] | None = None) -> str:
    """Run a setup command and return its stdout; on failure raise CheckError with its output's tail."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-TAIL_LINES:])
        raise CheckError(f"{shlex.join(str(a) for a in argv)} exited {proc.returncode}:\n{output}")
    return proc.stdout


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secure-iot" / "fresh-machine"


# --- the host -----------------------------------------------------------------------------


def host_go() -> HostGo:
    """The host's Go (the README requires Go >= 1.24; bookworm's golang is older)."""
    go = shutil.which("go")
    if go is None:
        raise CheckError("Go is not on PATH: the README's Quickstart requires Go >= 1.24 on the machine")
    goroot, goenv, version = run([go, "env", "GOROOT", "GOENV", "GOVERSION"]).splitlines()[:3]
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers < GO_MINIMUM:
        raise CheckError(f"host Go is {version}; the README requires Go >= {'.'.join(map(str, GO_MINIMUM))}")
    env_file = Path(goenv) if goenv not in ("", "off") and Path(goenv).is_file() else None
    return HostGo(Path(goroot), env_file, version)


def apt_sources() -> list[Path]:
    """The host's Debian sources for the suite, read where apt reads them (deb822 and one-line)."""
    candidates = [Path("/etc/apt/sources.list")]
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    found = []
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        deb822 = re.search(rf"^Suites:.*\b{SUITE}\b", text, re.MULTILINE | re.IGNORECASE)
        one_line = re.search(rf"^\s*deb\s+(\[[^]]*\]\s+)?\S+\s+{SUITE}\b", text, re.MULTILINE)
        if (path.suffix == ".sources" and deb822) or (path.suffix == ".list" and one_line):
            found.append(path)
    if not found:
        raise CheckError(f"no apt sources for Debian {SUITE} found in /etc/apt (sources.list, sources.list.d)")
    return found


def apt_date_options() -> list[Path]:
    """The host's apt.conf.d files that set Valid-Until/Date checks (a dated snapshot mirror needs them)."""
    directory = Path("/etc/apt/apt.conf.d")
    if not directory.is_dir():
        return []
    return [
        p
        for p in sorted(directory.iterdir())
        if p.is_file() and APT_DATE_OPTIONS.search(p.read_text(encoding="utf-8", errors="replace"))
    ]


def passed_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}
    env["SECURE_IOT_REGISTRY_PORT"] = str(port)
    return dict(sorted(env.items()))


def find_links_dirs() -> list[Path]:
    """Local directories PIP_FIND_LINKS names (bound read-only, so pip's configuration holds inside)."""
    dirs = []
    for item in os.environ.get("PIP_FIND_LINKS", "").split():
        path = Path(item.removeprefix("file://"))
        if path.is_absolute() and path.is_dir():
            dirs.append(path)
    return dirs


def ensure_mmdebstrap() -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    print("mmdebstrap is missing: apt-get install mmdebstrap", flush=True)
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run([*apt, "update", "-qq"], env=env)
    run([*apt, "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"], env=env)
    found = shutil.which("mmdebstrap")
    if found is None:
        raise CheckError("apt-get installed mmdebstrap but it is not on PATH")
    return found


# --- the root -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """Everything the cached root depends on; its hash is the cache key (host files by sha256 only)."""

    architecture: str
    mmdebstrap: str
    sources: tuple[Path, ...]
    aptopt: tuple[Path, ...]
    point_release: bool = False  # built from the suite alone: packages older than the pins (see OLDER)

    @property
    def include(self) -> tuple[str, ...]:
        return (*INCLUDE, *OLDER) if self.point_release else INCLUDE

    def as_json(self) -> dict[str, object]:
        return {
            "suite": SUITE,
            "variant": VARIANT,
            "include": list(self.include),
            "point_release": self.point_release,
            "architecture": self.architecture,
            "mmdebstrap": self.mmdebstrap,
            "sources": [{"path": str(p), "sha256": sha256_file(p)} for p in self.sources],
            "aptopt": [{"path": str(p), "sha256": sha256_file(p)} for p in self.aptopt],
        }

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()[:20]

    def argv(self, mmdebstrap: str, target: Path) -> list[str]:
        argv = [mmdebstrap, f"--variant={VARIANT}", f"--include={','.join(self.include)}"]
        argv += [f"--aptopt={p}" for p in self.aptopt]
        sources = [point_release_sources(self.sources, target.parent)] if self.point_release else self.sources
        return [*argv, SUITE, str(target), *(str(p) for p in sources)]


def root_recipe(mmdebstrap: str, point_release: bool = False) -> Recipe:
    return Recipe(
        architecture=run(["dpkg", "--print-architecture"]).strip(),
        mmdebstrap=run([mmdebstrap, "--version"]).strip(),
        sources=tuple(apt_sources()),
        aptopt=tuple(apt_date_options()),
        point_release=point_release,
    )


def point_release_stanzas(text: str) -> list[str]:
    """The deb822 stanzas of ``text`` narrowed to the suite itself (no -security, no -updates)."""
    kept = []
    for stanza in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in stanza.splitlines() if not line.lstrip().startswith("#")]
        suites = next((line for line in lines if line.lower().startswith("suites:")), "")
        if SUITE not in suites.split(":", 1)[-1].split():
            continue
        kept.append("\n".join(f"Suites: {SUITE}" if line is suites else line for line in lines))
    return kept


def point_release_sources(sources: Sequence[Path], into: Path) -> Path:
    """A sources file with only the suite's point release, read from the host's sources now.

    A root built from it has the packages of the last point release, older than the security
    builds tools.lock's minimums name (ADR 0021): the Quickstart must upgrade them, as on a machine
    installed months ago. One-line .list sources are narrowed the same way."""
    stanzas: list[str] = []
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            stanzas += point_release_stanzas(text)
            continue
        for line in text.splitlines():
            found = re.match(r"^\s*deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line)
            if found and found.group(3) == SUITE:
                stanzas.append(f"Types: deb\nURIs: {found.group(2)}\nSuites: {SUITE}\nComponents: {found.group(4)}")
    if not stanzas:
        raise CheckError(f"--point-release-root: no source for the {SUITE} suite itself in the host's apt sources")
    target = into / "point-release.sources"
    target.write_text("\n\n".join(stanzas) + "\n", encoding="utf-8")
    return target


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def root_tarball(mmdebstrap: str, recipe: Recipe, rebuild: bool) -> tuple[Path, dict[str, object]]:
    """The cached root tarball for ``recipe``, built with mmdebstrap if missing (or --rebuild-root)."""
    cache = cache_dir()
    key = recipe.key()
    tarball, meta = cache / f"{key}.tar", cache / f"{key}.json"
    with locked(cache / ".lock"):
        if tarball.is_file() and meta.is_file() and not rebuild:
            info = json.loads(meta.read_text())
            return tarball, {"key": key, "cached": True, "build_seconds": info.get("build_seconds")}
        print(f"building the {SUITE} root with mmdebstrap (cache key {key})", flush=True)
        partial = cache / f".{key}.{os.getpid()}.tar"
        start = time.monotonic()
        try:
            run(recipe.argv(mmdebstrap, partial))
            seconds = round(time.monotonic() - start, 1)
            os.replace(partial, tarball)
        finally:
            partial.unlink(missing_ok=True)
        write_json_atomic(meta, {"recipe": recipe.as_json(), "build_seconds": seconds, "bytes": tarball.stat().st_size})
        for stale in cache.glob("*.tar"):  # one root per recipe is enough; old recipes go
            if stale != tarball:
                stale.unlink(missing_ok=True)
                stale.with_suffix(".json").unlink(missing_ok=True)
        return tarball, {"key": key, "cached": False, "build_seconds": seconds}


def copy_into(root: Path, source: Path, target: str | None = None) -> None:
    dest = root / (target or str(source)).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    shutil.copyfile(source, dest)  # follows symlinks: the content, not a dangling link


def prepare_root(root: Path, tarball: Path, go: HostGo, recipe: Recipe | None = None) -> None:
    """Extract a fresh root and give it what a machine of this kind has (read from the host now)."""
    root.mkdir()
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball, "-C", root])
    if recipe is not None and recipe.point_release:  # built from the point release; updates are reachable now
        listed = root / "etc/apt/sources.list.d"
        for old in listed.glob("*.sources"):
            old.unlink()
        for number, source in enumerate(recipe.sources):
            copy_into(root, source, f"/etc/apt/sources.list.d/{number:04d}host{source.suffix}")
    for name in ("/etc/resolv.conf", "/etc/hosts", "/etc/pip.conf"):
        if Path(name).is_file():
            copy_into(root, Path(name))
    extra = Path("/usr/local/share/ca-certificates")
    if extra.is_dir():
        shutil.copytree(extra, root / str(extra).lstrip("/"), dirs_exist_ok=True)
    run(["chroot", root, "update-ca-certificates"], env={"PATH": ROOT_PATH})
    if go.goenv is not None:
        copy_into(root, go.goenv, "/root/.config/go/env")  # the Go env file of a fresh HOME=/root
    (root / str(go.goroot).lstrip("/")).mkdir(parents=True, exist_ok=True)
    profile = root / "etc/profile.d/go.sh"  # Go's install instructions: its bin directory on PATH
    profile.write_text(f'export PATH="$PATH:{go.goroot / "bin"}"\n')
    (root / SRC.lstrip("/")).mkdir(parents=True)
    for directory in find_links_dirs():
        (root / str(directory).lstrip("/")).mkdir(parents=True, exist_ok=True)


def installed_in(root: Path, packages: Sequence[str]) -> dict[str, str]:
    """The Debian versions ``packages`` have in ``root`` (recorded: what the Quickstart had to upgrade)."""
    query = run(
        ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f", "${Package} ${Version}\\n", *packages]
    )
    return dict(line.split(" ", 1) for line in query.splitlines() if " " in line)


def clean_clone(repo: Path, into: Path) -> str:
    """A clean clone of ``repo`` at its HEAD commit; returns the commit."""
    commit = run(["git", "-C", repo, "rev-parse", "HEAD"]).strip()
    dirty = run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"]).strip()
    if dirty:
        print(f"note: {repo} has uncommitted changes; the check runs the HEAD commit {commit[:12]} only", flush=True)
    run(["git", "clone", "--quiet", "--no-hardlinks", repo, into])
    run(["git", "-C", into, "reset", "--quiet", "--hard", commit])
    return commit


# --- entering -----------------------------------------------------------------------------


def host_go_cache() -> Path:
    """The host's Go module and build caches, where the project keeps them (tasks/toolchain/go.py)."""
    path = cache_dir().parent / "go"
    if not (path / "mod").is_dir():
        raise CheckError(f"--warm-go-cache: no Go module cache at {path / 'mod'} (run `nox -s tools` on the host)")
    return path


def go_cache_mount(root: Path, lower: Path, scratch: Path) -> list[str]:
    """Shell lines mounting ``lower`` copy-on-write (overlayfs) where the fresh machine's Go caches live.

    Only Go's module download and build caches are shared: every tool is still built, installed and
    checked by the project's own steps inside the fresh machine, and nothing is written to the host's cache.
    """
    q = shlex.quote
    target = q(str(root) + GO_CACHE_IN_ROOT)
    upper, work = q(str(scratch / "upper")), q(str(scratch / "work"))
    options = q(f"lowerdir={lower},upperdir={scratch / 'upper'},workdir={scratch / 'work'}")
    return [f"mkdir -p {upper} {work} {target}", f"mount -t overlay overlay -o {options} {target}"]


def enter_script(
    root: Path, clone: Path, go: HostGo, env: dict[str, str], command: str, go_cache: Path | None = None
) -> str:
    """The shell script run by `unshare --mount --propagation private --fork` for one command."""
    q = shlex.quote
    r = str(root)
    lines = [
        "set -eu",
        f"mount --bind {q(r)} {q(r)}",  # / inside the chroot must be a mount point (buildah remounts it)
        f"mount -t proc proc {q(r + '/proc')}",
        f"mount --rbind /sys {q(r + '/sys')}",
        f"mount --rbind /dev {q(r + '/dev')}",
    ]
    if go_cache is not None:
        lines += go_cache_mount(root, go_cache, root.parent / "go-cache")
    for source in (go.goroot, *find_links_dirs()):
        target = q(r + str(source))
        lines += [f"mount --bind {q(str(source))} {target}", f"mount -o remount,bind,ro {target}"]
    lines.append(f"mount --bind {q(str(clone))} {q(r + SRC)}")
    assignments = " ".join(
        q(f"{k}={v}") for k, v in {"HOME": "/root", "PATH": ROOT_PATH, "LANG": "C.UTF-8", **env}.items()
    )
    inner = f"cd {q(SRC)} && {command}"
    lines.append(f"exec chroot {q(r)} env -i {assignments} bash -lc {q(inner)}")
    return "\n".join(lines) + "\n"


def run_command(
    result: CommandResult,
    root: Path,
    clone: Path,
    go: HostGo,
    env: dict[str, str],
    timeout: float,
    go_cache: Path | None = None,
) -> None:
    """Run one command in the root, its output to ``result.log``; fills in ``result`` even if interrupted."""
    script = enter_script(root, clone, go, env, result.command, go_cache)
    argv = ["unshare", "--mount", "--propagation", "private", "--fork", "/bin/sh", "-c", script]
    start = time.monotonic()
    with open(result.log, "wb") as handle:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            result.exit_code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result.timed_out, result.exit_code = True, 124
            handle.write(f"\n[fresh-machine] timed out after {timeout:g} s\n".encode())
        except BaseException:  # interrupted (SIGINT/SIGTERM): record it, the clean-up runs next
            result.exit_code = 130
            handle.write(b"\n[fresh-machine] interrupted\n")
            raise
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            result.seconds = round(time.monotonic() - start, 1)


# --- cleaning up --------------------------------------------------------------------------


def processes_in(root: Path) -> list[int]:
    """PIDs whose root directory is ``root`` or inside it."""
    try:
        want = root.stat()
    except FileNotFoundError:
        return []
    prefix = str(root)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            link = str((entry / "root").readlink()).removesuffix(" (deleted)")
            info = (entry / "root").stat()
        except OSError:  # gone, or a zombie
            continue
        same = (info.st_dev, info.st_ino) == (want.st_dev, want.st_ino)
        if same or link == prefix or link.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


def kill_processes_in(root: Path) -> list[int]:
    """SIGTERM, then SIGKILL, every process rooted in ``root``; returns the PIDs signalled."""
    signalled: list[int] = []
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        pids = processes_in(root)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        signalled += [p for p in pids if p not in signalled]
        deadline = time.monotonic() + grace
        while processes_in(root) and time.monotonic() < deadline:
            time.sleep(0.2)
    return signalled


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace."""
    prefix = str(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def clean_up(workdir: Path, keep: bool) -> Cleanup:
    root = workdir / "root"
    killed = kill_processes_in(root)
    for point in sorted(mounts_under(workdir), key=len, reverse=True):  # none expected: mounts are private
        subprocess.run(["umount", "--recursive", "--lazy", point], capture_output=True, check=False)
    left: list[str] = []
    mounted = mounts_under(workdir)
    if mounted:
        left.append(f"still mounted, not removed: {', '.join(mounted)}")
    elif not keep:
        shutil.rmtree(workdir, ignore_errors=True)
        if workdir.exists():
            left.append(f"{workdir} could not be removed")
    running = processes_in(root) if root.exists() else []
    if running:
        left.append(f"processes still rooted in the chroot: {running}")
    return Cleanup(killed=killed, kept=str(workdir) if keep else "", left_behind=left)


# --- main ---------------------------------------------------------------------------------


def print_result(result: CommandResult) -> None:
    verdict = "PASS" if result.passed else "FAIL"
    print(f"{verdict} {result.seconds:8.1f} s  {result.command}", flush=True)
    if not result.passed:
        why = "timed out" if result.timed_out else f"exit code {result.exit_code}"
        print(f"     failed ({why}): {result.command}\n     full log: {result.log}\n     last lines:")
        for line in tail(Path(result.log)).splitlines():
            print(f"     | {line}")


def ensure_free_space(workdir: Path, needed: int = MIN_FREE_BYTES) -> None:
    """Refuse to start on a disk that a full run would fill (fail closed, before anything is built)."""
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise CheckError(f"{free / 1e9:.0f} GB free under {workdir.parent}; a full run needs ~{needed / 1e9:.0f} GB")


def check(args: argparse.Namespace, report: Report, workdir: Path) -> None:
    if not args.command:  # the whole Quickstart; a --command run is the caller's to size
        ensure_free_space(workdir)
    commands = args.command or quickstart_commands((Path(args.repo) / "README.md").read_text(encoding="utf-8"))
    go = host_go()
    report.host_go = go.version
    go_cache = host_go_cache() if args.warm_go_cache else None
    if go_cache is not None:
        report.go_cache = f"warm: the host's {go_cache} mounted copy-on-write (tools still built by the project)"
    mmdebstrap = ensure_mmdebstrap()
    recipe = root_recipe(mmdebstrap, args.point_release_root)
    start = time.monotonic()
    tarball, info = root_tarball(mmdebstrap, recipe, args.rebuild_root)
    report.root = {"recipe": recipe.as_json(), **info, "obtain_seconds": round(time.monotonic() - start, 1)}
    built = "cached" if info["cached"] else "built"
    print(f"root: {built} ({info['build_seconds']} s to build), {tarball.stat().st_size / 1e6:.0f} MB", flush=True)
    start = time.monotonic()
    report.commit = clean_clone(Path(args.repo), workdir / "clone")
    prepare_root(workdir / "root", tarball, go, recipe)
    report.root["prepare_seconds"] = round(time.monotonic() - start, 1)
    if recipe.point_release:
        report.root["older_than_pins"] = installed_in(workdir / "root", ("dpkg", "openssl", *OLDER))
    env = passed_env(report.registry_port)
    logs = Path(args.out)
    logs.mkdir(parents=True, exist_ok=True)
    print(f"commit {report.commit[:12]}; registry port {report.registry_port}; Go {go.version}", flush=True)
    print(f"Go caches: {report.go_cache}", flush=True)
    for index, command in enumerate(commands, 1):
        print(f"RUN  {command}  (log: {logs / f'command-{index}.log'})", flush=True)
        result = CommandResult(command, exit_code=-1, seconds=0.0, log=str(logs / f"command-{index}.log"))
        report.commands.append(result)
        run_command(result, workdir / "root", workdir / "clone", go, env, args.timeout, go_cache)
        print_result(result)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--repo", default=str(REPO), help="repository whose HEAD commit is checked (default: this one)")
    parser.add_argument(
        "--command", action="append", help="a command to run instead of the README's Quickstart (repeatable)"
    )
    parser.add_argument("--keep-root", action="store_true", help="keep the temporary root and clone (debugging)")
    parser.add_argument("--rebuild-root", action="store_true", help="rebuild the cached root tarball")
    parser.add_argument(
        "--warm-go-cache",
        action="store_true",
        help="mount the host's Go module/build caches copy-on-write (checks install steps without the cold Go builds)",
    )
    parser.add_argument(
        "--point-release-root",
        action="store_true",
        help="a root built from the suite's point release alone: its packages are older than tools.lock's minimums",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command (default 3600)")
    parser.add_argument("--out", default=str(REPO / "out" / "fresh-machine"), help="result.json and command logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("error: run as root (mmdebstrap, mounts and chroot need it)", file=sys.stderr)
        return 2
    for tool in ("unshare", "chroot", "git", "tar", "mount"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not on PATH", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below runs
    args.repo = str(Path(args.repo).resolve())
    report = Report(repo=args.repo, commit="", registry_port=processes.free_port(avoid=AVOID_PORTS))
    workdir = Path(tempfile.mkdtemp(prefix="secure-iot-fresh-"))
    started = time.monotonic()
    try:
        check(args, report, workdir)
    except CheckError as exc:
        report.error = str(exc)
        print(f"error: {exc}", file=sys.stderr)
    except (KeyboardInterrupt, SystemExit):
        report.error = "interrupted"
        print("interrupted: cleaning up", file=sys.stderr, flush=True)
        raise
    finally:
        report.cleanup = clean_up(workdir, args.keep_root)
        report.cleanup.total_seconds = round(time.monotonic() - started, 1)
        write_json_atomic(Path(args.out) / "result.json", report.as_json())
    for problem in report.cleanup.left_behind:
        print(f"LEFT BEHIND: {problem}", file=sys.stderr)
    if report.cleanup.kept:
        print(f"kept the root for debugging: {workdir}/root (clone: {workdir}/clone)")
    print(f"{'PASS' if report.passed() else 'FAIL'}: {Path(args.out) / 'result.json'}", flush=True)
    if report.error:
        return 2
    return 0 if report.passed() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
