"""Commands and daemons inside the project's network namespaces, and stopping them by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network.state import Process, State


def ip(ctx: Context, rec: StageRecord, args: Sequence[str | Path], *, check: bool = True) -> runner.Completed:
    return runner.run(rec, ctx.tool("ip"), args, check=check)


def run_in(
    ctx: Context,
    rec: StageRecord,
    namespace: str,
    tool: str,
    args: Sequence[str | Path],
    *,
    check: bool = True,
    timeout: float | None = 60,
) -> runner.Completed:
    """Run a pinned tool inside ``namespace`` (``ip netns exec``); both versions are recorded."""
    inner = ctx.tool(tool)
    rec.tools[inner.name] = inner.version
    return runner.run(
        rec, ctx.tool("ip"), ["netns", "exec", namespace, inner.path, *args], check=check, timeout=timeout
    )


def start_in(
    ctx: Context,
    rec: StageRecord,
    state: State,
    role: str,
    namespace: str,
    tool: str | runner.Tool,
    args: Sequence[str | Path],
    env: dict[str, str] | None = None,
) -> Process:
    """Start a pinned daemon (or the pipeline's own interpreter) in the foreground inside ``namespace``.

    Its PID goes into the state at once.
    """
    inner = tool if isinstance(tool, runner.Tool) else ctx.tool(tool)
    rec.tools[inner.name] = inner.version
    log = Path(state.directory) / f"{role.replace(':', '-')}.log"
    proc = runner.start(rec, ctx.tool("ip"), ["netns", "exec", namespace, inner.path, *args], log=log, env=env)
    process = Process(role, namespace, proc.pid, str(inner.path), str(log))
    state.processes.append(process)
    state.save()
    return process


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def is_ours(process: Process) -> bool:
    """The PID still runs the binary we started (ip netns exec execs into it): never signal a reused PID."""
    try:
        argv0 = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return alive(process.pid) and argv0.decode(errors="replace") == process.binary


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # started by an earlier invocation: init reaps it
        os.waitpid(pid, os.WNOHANG)


def stop(process: Process, grace: float = 3.0) -> str:
    if not is_ours(process):
        _reap(process.pid)
        return "not running"
    os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(process.pid)
        if not alive(process.pid):
            return "stopped (SIGTERM)"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    time.sleep(0.05)
    _reap(process.pid)
    return "killed (SIGKILL)"


def wait_for(path: Path, process: Process, what: str, timeout: float = 10.0) -> None:
    """Wait until a daemon made ``path`` (its control socket, its listening socket's file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if not alive(process.pid):
            raise NetworkError(f"{what} exited at start: {tail(Path(process.log))}")
        time.sleep(0.05)
    raise NetworkError(f"{what} did not become ready in {timeout:.0f}s: {tail(Path(process.log))}")


def tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def listening(pid: int, proto: str, port: int) -> bool:
    """Whether the namespace of ``pid`` has a socket bound to ``port`` (its /proc/<pid>/net table)."""
    try:
        rows = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
    except (FileNotFoundError, ProcessLookupError):
        return False
    wanted = f":{port:04X}"
    state_ok = {"tcp": "0A", "udp": "07"}[proto]  # LISTEN / unconnected
    return any(r.split()[1].endswith(wanted) and r.split()[3] == state_ok for r in rows)


def wait_listening(process: Process, proto: str, port: int, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(process.pid, proto, port):
            return
        if not alive(process.pid):
            raise NetworkError(f"{what} exited at start: {tail(Path(process.log))}")
        time.sleep(0.05)
    raise NetworkError(f"{what} is not listening on {proto}/{port} after {timeout:.0f}s: {tail(Path(process.log))}")
