"""The one way this project runs an external command.

Every call logs the exact argv (secrets redacted), the tool's pinned version, the
duration and the exit code into the current stage's evidence record.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404 - the runner is the single, audited place that spawns tools
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from tasks.core import progress
from tasks.core.errors import ToolError
from tasks.core.evidence import CommandRecord, StageRecord

REDACTED = "***"
SCRUBBED_ENV = {
    "grype": "GRYPE_",
    "syft": "SYFT_",
    "semgrep": "SEMGREP_",
    "cosign": "COSIGN_",
    "bandit": "BANDIT_",
    "shellcheck": "SHELLCHECK_",  # SHELLCHECK_OPTS=-e SC2115 would silence a check
    "gosec": "GOSEC",
}


@dataclass(frozen=True)
class Tool:
    """A resolved external tool: the binary to run and the version it was pinned at."""

    name: str
    version: str
    path: Path
    route: str = "path"
    sha256: str = ""
    packages: tuple[str, ...] = ()  # the Debian packages its apt route installed (package + also)

    def data_file(self, path: str | Path) -> Path:
        """A file one of this tool's Debian packages provides, reached only after resolution.

        Refused unless the file exists *and* dpkg lists it as shipped by one of the pinned
        packages: a file that is present only because someone installed a package by hand
        would hide a missing install step (tools.lock ``also``) until a fresh machine.
        """
        wanted = Path(path)
        if not wanted.is_absolute():
            raise ToolError(f"{self.name}: data file {wanted} must be an absolute path")
        if not self.packages:
            raise ToolError(f"{self.name}: resolved via {self.route}, not a Debian package; it ships no {wanted}")
        owners = [p for p in self.packages if str(wanted) in dpkg_file_list(p)]
        if not owners or not wanted.is_file():
            raise ToolError(
                f"{self.name}: {wanted} is not provided by its pinned packages ({', '.join(self.packages)}); "
                "add the Debian package that ships it to the tool's apt `also` list in tools.lock"
            )
        return wanted


DPKG_INFO = Path("/var/lib/dpkg/info")


def dpkg_file_list(package: str) -> frozenset[str]:
    """The paths dpkg records for an installed package (empty if it is not installed)."""
    for candidate in [DPKG_INFO / f"{package}.list", *sorted(DPKG_INFO.glob(f"{package}:*.list"))]:
        if candidate.is_file():
            return frozenset(candidate.read_text(encoding="utf-8", errors="replace").splitlines())
    return frozenset()


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:])


def redact(argv: Sequence[str], secrets: Sequence[str]) -> list[str]:
    out = []
    for arg in argv:
        for secret in secrets:
            if secret:
                arg = arg.replace(secret, REDACTED)
        out.append(arg)
    return out


def run(
    rec: StageRecord,
    tool: Tool,
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
    secrets: Sequence[str] = (),
    stdin: str | None = None,
    capture: bool = True,
) -> Completed:
    """Run ``tool`` with ``args``; record it in ``rec``; raise ToolError on failure if ``check``.

    ``env`` is added to the current environment. Output is captured (and returned) unless
    ``capture`` is False, in which case it streams to the terminal (long steps).
    """
    done, shown, seconds = _execute(
        tool, args, env=env, cwd=cwd, timeout=timeout, secrets=secrets, stdin=stdin, capture=capture
    )
    rec.tools[tool.name] = tool.version
    rec.commands.append(CommandRecord(shown, tool.name, tool.version, done.returncode, seconds))
    if check and done.returncode != 0:
        raise ToolError(f"{tool.name} exited {done.returncode}: {done.tail()}")
    return done


def probe(
    tool: Tool,
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> Completed:
    """An unrecorded, read-only question to a tool: its version, or one try of a readiness poll
    that repeats until a service answers (the caller records the poll's outcome with run()).
    Anything that decides, builds or changes state uses run()."""
    done, _, _ = _execute(
        tool, args, env=env, cwd=cwd, timeout=timeout, secrets=(), stdin=stdin, capture=True, quiet=True
    )
    return done


def _execute(
    tool: Tool,
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    timeout: float | None,
    secrets: Sequence[str],
    stdin: str | None,
    capture: bool,
    quiet: bool = False,
) -> tuple[Completed, list[str], float]:
    """The one place that spawns a tool (run() records it, probe() does not)."""
    argv = [str(tool.path), *map(str, args)]
    # A gating tool's settings come from the pipeline, never from the caller's environment
    # (GRYPE_ONLY_NOTFIXED=true would silently empty a scan, COSIGN_REPOSITORY would move
    # where signatures are looked up): its own *_ variables are dropped unless passed in env.
    prefix = SCRUBBED_ENV.get(tool.name)
    inherited = {k: v for k, v in os.environ.items() if not (prefix and k.startswith(prefix))}
    full_env = {**inherited, **(env or {})}
    shown = redact([tool.name, *map(str, args)], secrets)
    if not quiet:
        print(f"  $ {' '.join(shown)}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    # a captured command shows it is alive (spinner + elapsed on a terminal, a line every 30 s in CI)
    watching = progress.watch(f"{tool.name} {' '.join(shown[1:3])}") if capture and not quiet else nullcontext()
    try:
        with watching:
            proc = subprocess.run(  # nosec B603 - argv list, no shell; tools come from tools.lock
                argv,
                cwd=cwd,
                env=full_env,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,  # a tool must never wait for a prompt
                text=True,
                capture_output=capture,
                timeout=timeout,
                check=False,
            )
    except FileNotFoundError as exc:
        raise ToolError(f"{tool.name}: not found at {tool.path}; run `nox -s tools`") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{tool.name}: timed out after {timeout}s: {' '.join(shown)}") from exc
    done = Completed(argv, proc.returncode, proc.stdout or "", proc.stderr or "")
    return done, shown, round(time.monotonic() - t0, 3)


def start(
    rec: StageRecord, tool: Tool, args: Sequence[str | Path], *, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``tool`` as a managed background process (its own session, output to ``log``).

    ``env`` is added to the current environment (like run()).

    The caller owns the process: it writes the PID file and stops it by PID.
    """
    argv = [str(tool.path), *map(str, args)]
    print(f"  $ {' '.join([tool.name, *map(str, args)])} &", file=sys.stderr, flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        proc = subprocess.Popen(  # nosec B603 - argv list, no shell; tools come from tools.lock
            argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    rec.tools[tool.name] = tool.version
    rec.commands.append(CommandRecord([tool.name, *map(str, args)], tool.name, tool.version, 0, 0.0))
    return proc
