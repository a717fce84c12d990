"""Commands and daemons inside the project's network namespaces (stopped by PID through tasks/core/processes.py)."""

from __future__ import annotations

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
) -> Process:
    """Start a pinned daemon (or the pipeline's own interpreter) in the foreground inside ``namespace``.

    Its PID goes into the state at once.
    """
    inner = tool if isinstance(tool, runner.Tool) else ctx.tool(tool)
    rec.tools[inner.name] = inner.version
    log = log_of(state, role)
    proc = runner.start(rec, ctx.tool("ip"), ["netns", "exec", namespace, inner.path, *args], log=log, env=env)
    process = Process(role, namespace, proc.pid, str(inner.path), str(log))
    state.processes.append(process)
    state.save()
    return process


def is_ours(process: Process) -> bool:
    """The PID still runs the binary we started (ip netns exec execs into it): never signal a reused PID."""
    return processes.alive(process.pid, process.binary)


def stop(process: Process, grace: float = 3.0) -> str:
    return processes.stop_pid(process.pid, process.binary, grace=grace)


def _failed(what: str, process: Process, not_ready: str) -> Callable[[str], Exception]:
    def failed(why: str) -> Exception:
        log = processes.tail(Path(process.log))
        return NetworkError(f"{what} exited at start: {log}" if why == "exited" else f"{not_ready}: {log}")

    return failed


def wait_for(path: Path, process: Process, what: str, timeout: float = 10.0) -> None:
    """Wait until a daemon made ``path`` (its control socket, its listening socket's file)."""
    processes.wait_until(
        path.exists,
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
