"""The processes the project starts itself (daemons, servers, QEMU, swtpm): the one home for watching
and stopping them.

A process is only ever signalled by the PID the project recorded, and only while that PID still
runs the binary it started (a recycled PID is never signalled). Stopping is SIGTERM, then SIGKILL
after a grace period; what happened is returned as a short phrase for the evidence. A failure to
start is reported with the last lines of the process's log, and free ports are picked by asking the
kernel for one on the loopback.

``runner.start`` is how a process is started (the one way this project runs a command); this module
is how it is waited for and ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess  # nosec B404 - only to wait for processes runner.start spawned
import time
from collections.abc import Callable, Container
from pathlib import Path

from tasks.core.errors import ToolError

POLL_S = 0.05
KILL_WAIT_S = 5.0  # after SIGKILL: how long to wait for the kernel to take the process away


def alive(pid: int, binary: str | None = None, *, exiting: bool = False) -> bool:
    """``pid`` runs and is not a zombie; with ``binary``, its argv[0] ends with it (a recycled PID that
    now runs something else is not ours). ``exiting``: a process that has released its memory on the
    way out (an empty command line, not yet a zombie) still counts as running."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0] if binary is not None else b""
    except (OSError, IndexError):
        return False
    if state == "Z":
        return False
    return binary is None or argv0.endswith(binary.encode()) or (exiting and not argv0)


def reap(pid: int) -> None:
    """Collect our child's exit status (a process an earlier invocation started is init's to reap)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _gone_within(pid: int, binary: str | None, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        reap(pid)
        if not alive(pid, binary, exiting=True):  # gone, or its PID now runs something else
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def stop_pid(pid: int, binary: str | None = None, *, grace: float = 3.0, sig: signal.Signals = signal.SIGTERM) -> str:
    """Stop a recorded process by its PID: ``sig`` (SIGTERM), then SIGKILL after ``grace`` seconds.

    ``sig`` is for a daemon whose polite end is another signal (postgres: SIGINT is its fast
    shutdown; its SIGTERM waits for every client to leave). Returns how it ended, for the
    evidence: "not running", "stopped (SIGTERM)", "killed (SIGKILL)", or "still running" when not
    even SIGKILL took it away in time.
    """
    if not alive(pid, binary):
        reap(pid)
        return "not running"
    _signal(pid, sig)
    if _gone_within(pid, binary, grace):
        return f"stopped ({sig.name})"
    _signal(pid, signal.SIGKILL)
    return "killed (SIGKILL)" if _gone_within(pid, binary, KILL_WAIT_S) else "still running"


def stop(
    proc: subprocess.Popen[bytes],
    grace: float = 3.0,
    *,
    group: bool = False,
    sig: signal.Signals = signal.SIGTERM,
) -> str:
    """Stop a process ``runner.start`` returned, by its PID: ``sig`` (SIGTERM), then SIGKILL after
    ``grace`` seconds (``sig``: as for stop_pid).

    ``group``: signal its whole process group (a process started in its own session, with the
    children it ran: a build's compilers). Returns how it ended, for the evidence. A process that
    already exited is only reaped.
    """

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)

    if proc.poll() is not None:
        if group:
            send(signal.SIGKILL)  # what the leader left behind in its group (a build's compilers)
        return f"exited {proc.returncode}"
    send(sig)
    try:
        proc.wait(grace)
        ended = f"stopped ({sig.name})"
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()
        return "killed (SIGKILL)"
    if group:
        send(signal.SIGKILL)
    return ended


def tail(log: Path, lines: int = 3) -> str:
    """The last lines of a process's log on one line: what a start-up failure is reported with."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def wait_until(
    ready: Callable[[], bool],
    running: Callable[[], bool],
    *,
    timeout: float,
    failed: Callable[[str], Exception],
    poll: float = POLL_S,
) -> None:
    """Poll until ``ready()``; raise ``failed("exited")`` as soon as the process is no longer
    ``running()``, ``failed("timeout")`` after ``timeout`` seconds. ``failed`` builds the one-line
    error the caller's domain raises (a ToolError, a NetworkError, ...). A process that exited is
    never ready: whatever answers on its port then is someone else's (a squatter that won the bind)."""
    deadline = time.monotonic() + timeout
    while True:
        if not running():
            raise failed("exited")
        if ready():
            return
        if time.monotonic() > deadline:
            raise failed("timeout")
        time.sleep(poll)


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections on ``host:port`` (in this network namespace)."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def bound_in_namespace(pid: int, proto: str, port: int) -> bool:
    """The network namespace of ``pid`` has a socket bound to ``port`` (its /proc/<pid>/net table):
    how to see a daemon listen inside a namespace this process is not in."""
    try:
        rows = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
    except OSError:
        return False
    wanted = f":{port:04X}"
    state_ok = {"tcp": "0A", "udp": "07"}[proto]  # LISTEN / unconnected
    return any(r.split()[1].endswith(wanted) and r.split()[3] == state_ok for r in rows)


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, what: str, *, timeout: float, poll: float = POLL_S
) -> None:
    """Wait until a process ``runner.start`` returned accepts TCP connections on 127.0.0.1:``port``.

    Fails closed with one line if it exits first or the time runs out (``what`` names it: "swtpm").
    """

    def failed(why: str) -> Exception:
        ended = f"exited {proc.returncode}" if why == "exited" else f"not after {timeout:g} s"
        return ToolError(f"{what} did not listen on 127.0.0.1:{port} ({ended})")

    wait_until(lambda: accepts(port), lambda: proc.poll() is None, timeout=timeout, failed=failed, poll=poll)


def free_port(avoid: Container[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now (the kernel's pick), not one of ``avoid``."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


def free_port_pair() -> int:
    """A port on 127.0.0.1 free now together with the next one (swtpm's server and control channel)."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise ToolError("found no two adjacent free ports on 127.0.0.1")
