"""Commands and daemons inside the project's network namespaces (stopped by PID through tasks/core/processes.py)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from tasks.context import Context
from tasks.core import processes, runner
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network.state import Process, State


def ip(ctx: Context, rec: StageRecord, args: Sequence[str | Path], *, check: bool = True) -> runner.Completed:
    return runner.run(rec, ctx.tool("ip"), args, check=check)


def run_in(
    ctx: Context,
    rec: StageRecord,
    namespace: str,
    tool: str | runner.Tool,
    args: Sequence[str | Path],
    *,
    check: bool = True,
    timeout: float | None = 60,
    env: dict[str, str] | None = None,
) -> runner.Completed:
    """Run a pinned tool (or the pipeline's own interpreter) inside ``namespace`` (``ip netns exec``);
    both versions are recorded."""
    inner = tool if isinstance(tool, runner.Tool) else ctx.tool(tool)
    rec.tools[inner.name] = inner.version
    return runner.run(
        rec, ctx.tool("ip"), ["netns", "exec", namespace, inner.path, *args], check=check, timeout=timeout, env=env
    )


def log_of(state: State, role: str) -> Path:
    """Where a daemon's output goes: appended to, so a state directory used again keeps earlier runs' lines."""
    return Path(state.directory) / f"{role.replace(':', '-')}.log"


def start_in(
    ctx: Context,
    rec: StageRecord,
    state: State,
    role: str,
    namespace: str,
    tool: str | runner.Tool,
    args: Sequence[str | Path],
    env: dict[str, str] | None = None,
    *,
    becomes: runner.Tool | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
    stop_grace: float = 3.0,
) -> Process:
    """Start a pinned daemon (or the pipeline's own interpreter) in the foreground inside ``namespace``.

    Its PID goes into the state at once, with how it is stopped. ``becomes``: the binary ``tool``
    execs into (setpriv -> postgres), which is what that PID runs and is checked against.
    """
    inner = tool if isinstance(tool, runner.Tool) else ctx.tool(tool)
    rec.tools[inner.name] = inner.version
    log = log_of(state, role)
    proc = runner.start(rec, ctx.tool("ip"), ["netns", "exec", namespace, inner.path, *args], log=log, env=env)
    binary = str((becomes or inner).path)
    process = Process(role, namespace, proc.pid, binary, str(log), stop_signal.name, stop_grace)
    state.processes.append(process)
    state.save()
    return process


def is_ours(process: Process) -> bool:
    """The PID still runs the binary we started (ip netns exec execs into it): never signal a reused PID."""
    return processes.alive(process.pid, process.binary)


def stop(process: Process, grace: float | None = None) -> str:
    """Stop a recorded daemon by its PID, the way it was recorded to end (``grace``: longer, for a
    daemon that writes its files out on the way, like nfpcapd)."""
    wait = process.stop_grace if grace is None else grace
    return processes.stop_pid(process.pid, process.binary, grace=wait, sig=signal.Signals[process.stop_signal])


def _failed(what: str, process: Process, not_ready: str) -> Callable[[str], Exception]:
    def failed(why: str) -> Exception:
        log = processes.tail(Path(process.log))
        return NetworkError(f"{what} exited at start: {log}" if why == "exited" else f"{not_ready}: {log}")

    return failed


def wait_for(path: Path, process: Process, what: str, timeout: float = 10.0) -> None:
    """Wait until a daemon made ``path`` (its control socket, its listening socket's file)."""
    wait_ready(path.exists, process, what, timeout)


def wait_ready(ready: Callable[[], bool], process: Process, what: str, timeout: float = 10.0) -> None:
    """Wait until ``ready()`` while the daemon runs; fail with its log's tail if it exits or times out."""
    processes.wait_until(
        ready,
        lambda: processes.alive(process.pid),
        timeout=timeout,
        failed=_failed(what, process, f"{what} did not become ready in {timeout:.0f}s"),
    )


def wait_listening(process: Process, proto: str, port: int, what: str, timeout: float = 10.0) -> None:
    processes.wait_until(
        lambda: processes.bound_in_namespace(process.pid, proto, port),
        lambda: processes.alive(process.pid),
        timeout=timeout,
        failed=_failed(what, process, f"{what} is not listening on {proto}/{port} after {timeout:.0f}s"),
    )
