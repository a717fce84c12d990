"""swtpm, the reference device's TPM 2.0, in every way the pipeline runs it; one `Tpm` for all of them.

- ``fresh``: a throwaway TPM (new state in a private directory) for one firmware boot, on a unix
  control socket for QEMU's tpm-emulator;
- ``measured``: a device's own TPM (its persistent state) for a measured boot, on a unix control
  socket; when the boot is over the volatile state (the PCRs as U-Boot left them) is saved with
  ``swtpm_ioctl -v`` and swtpm stopped with ``-s``, so ``running(resume=True)`` can carry on from it;
- ``running``: a device's own TPM served on 127.0.0.1 (server and control over TCP) for tpm2-tools,
  powered on with TPM2_Startup(CLEAR) or resumed from the saved volatile state;
- ``manufacture_state``: a new TPM's state (swtpm_setup: EKs created and persisted).

Each is started through the runner (command and PID in the evidence) and stopped by its PID
whatever happened. A unix socket path must fit in 107 bytes and out/ may be deep, so the sockets
live in a short private directory under the system's temporary directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.context import Context
from tasks.core import processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord

if TYPE_CHECKING:
    import subprocess  # nosec B404 - the type of what runner.start returns; nothing is spawned here

SOCKET_WAIT_S = 10.0
WAIT_S = 10.0
POLL_S = 0.02
VOLATILE_STATE = "tpm2-00.volatilestate"  # what swtpm_ioctl -v saved; swtpm resumes from it when present


@dataclass(frozen=True)
class Tpm:
    """One running swtpm: its PID, and where it is reached — QEMU's unix control ``socket`` (a boot)
    or the TCP ``port`` tpm2-tools talks to (control on ``port + 1``)."""

    pid: int
    socket: Path | None = None
    port: int | None = None

    @property
    def control_socket(self) -> Path:
        """The unix control socket QEMU's tpm-emulator connects to."""
        if self.socket is None:
            raise ToolError(f"swtpm (pid {self.pid}) serves tpm2-tools over TCP: boot QEMU on swtpm.fresh or .measured")
        return self.socket

    @property
    def env(self) -> dict[str, str]:
        """What tpm2-tools needs to reach it."""
        if self.port is None:
            raise ToolError(f"swtpm (pid {self.pid}) is QEMU's over a unix socket: serve it with swtpm.running")
        return {"TPM2TOOLS_TCTI": f"swtpm:host=127.0.0.1,port={self.port}"}


def setup_tool(ctx: Context, name: str = "swtpm_setup") -> runner.Tool:
    """swtpm_setup (or swtpm_ioctl), from the pinned swtpm's own packages (swtpm-tools)."""
    swtpm = ctx.tool("swtpm")
    return dataclasses.replace(swtpm, name=name, path=swtpm.data_file(f"/usr/bin/{name}"))


def manufacture_state(ctx: Context, rec: StageRecord, state: Path) -> None:
    """A new TPM: fresh state, RSA and ECC EKs created and persisted, sha256 bank active."""
    state.mkdir(parents=True, mode=0o700, exist_ok=False)
    runner.run(
        rec,
        setup_tool(ctx),
        ["--tpm2", "--createek", "--pcr-banks", "sha256", "--tpmstate", str(state), "--overwrite"],
        timeout=60,
    )


@contextlib.contextmanager
def fresh(ctx: Context, rec: StageRecord, log: Path, pids: dict[str, int], stopped: dict[str, str]) -> Iterator[Tpm]:
    """A fresh TPM 2.0 (new state) on a unix control socket; its PID in ``pids``, how it ended in ``stopped``."""
    runtime = Path(tempfile.mkdtemp(prefix="secure-iot-tpm-"))
    try:
        (runtime / "state").mkdir(mode=0o700)
        sock = runtime / "swtpm.sock"
        log.unlink(missing_ok=True)
        proc = _start_on_socket(ctx, rec, runtime / "state", sock, log)
        pids["swtpm"] = proc.pid
        try:
            _wait_for_socket(proc, sock, log)
            yield Tpm(proc.pid, socket=sock)
        finally:
            stopped["swtpm"] = processes.stop(proc)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@contextlib.contextmanager
def measured(ctx: Context, rec: StageRecord, state: Path, log: Path) -> Iterator[Tpm]:
    """The device's own TPM for one cold boot, on a unix control socket. When the boot ends without an
    error its volatile state (the PCRs) is saved and swtpm stopped by swtpm_ioctl; it is stopped by PID
    whatever happened."""
    runtime = Path(tempfile.mkdtemp(prefix="secure-iot-dev-"))
    sock = runtime / "swtpm.sock"
    ioctl = setup_tool(ctx, "swtpm_ioctl")
    # A cold boot: power was off, so the volatile state a previous boot saved for the agent is gone.
    # Left in place, swtpm would resume from it and U-Boot would extend on top of the last boot's PCRs.
    (state / VOLATILE_STATE).unlink(missing_ok=True)
    try:
        proc = _start_on_socket(ctx, rec, state, sock, log)
        try:
            _wait_for_socket(proc, sock, log)
            yield Tpm(proc.pid, socket=sock)
            runner.run(rec, ioctl, ["--unix", str(sock), "-v"], timeout=30)  # save the volatile state (PCRs)
            runner.run(rec, ioctl, ["--unix", str(sock), "-s"], timeout=30)
            proc.wait(10)
        finally:
            processes.stop(proc)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@contextlib.contextmanager
def running(ctx: Context, rec: StageRecord, state: Path, log: Path, *, resume: bool = False) -> Iterator[Tpm]:
    """swtpm on the device's state (server + control on 127.0.0.1): powered on with TPM2_Startup(CLEAR),
    or, with ``resume``, carrying on from the volatile state a boot saved (PCRs as the boot left them)."""
    port = processes.free_port_pair()
    args = ["socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port},bindaddr=127.0.0.1"]
    flags = "not-need-init" if resume else "not-need-init,startup-clear"
    args += ["--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1", "--flags", flags]
    proc = runner.start(rec, ctx.tool("swtpm"), args, log=log)
    try:
        processes.wait_listening(proc, port, "swtpm", timeout=WAIT_S, poll=0.02)
        tpm = Tpm(proc.pid, port=port)
        yield tpm
        # An orderly TPM2_Shutdown before power-off: without it the next power-on counts a
        # dictionary-attack strike and after a few cycles refuses every DA-protected key.
        runner.run(rec, ctx.tool("tpm2"), ["shutdown"], env=tpm.env, timeout=30)
    finally:
        rec.details.setdefault("swtpm", []).append({"pid": proc.pid, "stopped": processes.stop(proc)})


def _start_on_socket(ctx: Context, rec: StageRecord, state: Path, sock: Path, log: Path) -> subprocess.Popen[bytes]:
    args = ["socket", "--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={sock}"]
    return runner.start(rec, ctx.tool("swtpm"), args, log=log)


def _wait_for_socket(proc: subprocess.Popen[bytes], sock: Path, log: Path) -> None:
    def failed(why: str) -> Exception:
        return ToolError(f"swtpm did not open {sock} ({why}, exit {proc.poll()}): {processes.tail(log)}")

    processes.wait_until(sock.exists, lambda: proc.poll() is None, timeout=SOCKET_WAIT_S, failed=failed, poll=POLL_S)
