"""A device's TPM on the host: its swtpm state served on 127.0.0.1 for tpm2-tools, stopped by PID.

The guest initramfs carries no tpm2-tools, so the agent's TPM work runs here against the same
swtpm state the device owns (TPM2TOOLS_TCTI=swtpm:...). Without a resource manager, transient
objects and sessions are flushed after each step (a TPM holds only three of each).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord

EK_HANDLE = "0x81010001"  # the RSA 2048 EK swtpm_setup --createek persists
EK_CERT_NV_INDEX = "0x01c00002"  # TCG: the RSA EK certificate's NV index
WAIT_S = 10.0


@dataclass(frozen=True)
class Tpm:
    """One running swtpm: what tpm2-tools needs to reach it."""

    port: int
    pid: int

    @property
    def env(self) -> dict[str, str]:
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


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise ToolError("swtpm: found no two adjacent free ports on 127.0.0.1")


@contextlib.contextmanager
def running(ctx: Context, rec: StageRecord, state: Path, log: Path, *, resume: bool = False) -> Iterator[Tpm]:
    """swtpm on the device's state (server + control on 127.0.0.1): powered on with TPM2_Startup(CLEAR),
    or, with ``resume``, carrying on from the volatile state a boot saved (PCRs as the boot left them)."""
    port = _free_port_pair()
    args = ["socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port},bindaddr=127.0.0.1"]
    flags = "not-need-init" if resume else "not-need-init,startup-clear"
    args += ["--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1", "--flags", flags]
    proc = runner.start(rec, ctx.tool("swtpm"), args, log=log)
    try:
        runner.wait_listening(proc, port, "swtpm", timeout=WAIT_S, poll=0.02)
        tpm = Tpm(port, proc.pid)
        yield tpm
        # An orderly TPM2_Shutdown before power-off: without it the next power-on counts a
        # dictionary-attack strike and after a few cycles refuses every DA-protected key.
        runner.run(rec, ctx.tool("tpm2"), ["shutdown"], env=tpm.env, timeout=30)
    finally:
        rec.details.setdefault("swtpm", []).append({"pid": proc.pid, "stopped": runner.stop(proc)})


def tpm2(
    ctx: Context, rec: StageRecord, tpm: Tpm, args: Sequence[str | Path], *, cwd: Path | None = None
) -> runner.Completed:
    return runner.run(rec, ctx.tool("tpm2"), list(args), env=tpm.env, cwd=cwd, timeout=60)


def flush(ctx: Context, rec: StageRecord, tpm: Tpm) -> None:
    tpm2(ctx, rec, tpm, ["flushcontext", "--transient-object"])
    tpm2(ctx, rec, tpm, ["flushcontext", "--loaded-session"])
