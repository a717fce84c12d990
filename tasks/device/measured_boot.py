"""A real measured boot into the device's own TPM: QEMU boots the firmware against the device's swtpm
state, then the TPM is handed, PCRs intact, to the agent on the host.

A clean QEMU exit shuts the TPM down and the PCRs are lost, so QEMU runs with -no-shutdown (a guest
power-off pauses it) and is stopped with SIGKILL (by PID) once the boot has said what it had to (the
agent finished, or U-Boot refused); swtpm_ioctl
then saves the volatile state (-v) and stops swtpm (-s), and swtpm.running(resume=True) serves the
same state to tpm2-tools. The firmware's QEMU options come from the caller (tasks/firmware is a
sibling package): ``qemu_args(socket)`` returns them for the swtpm control socket.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.device.swtpm import setup_tool

if TYPE_CHECKING:
    import subprocess  # nosec B404 - the type of what runner.start returns; nothing is spawned here

POLL_S = 0.01
VOLATILE_STATE = "tpm2-00.volatilestate"  # what swtpm_ioctl -v saved; swtpm resumes from it when present
# Where a boot has said what it had to. Both are followed closely by a power-off (the guest's, or
# the boot command's after a refusal), which would shut the TPM down: QEMU is killed at once.
AGENT_DONE = re.compile(r"^secure-iot agent: done", re.M)  # a full boot: the guest agent finished
MEASURED = re.compile(r"^secure-iot: measured FIT into PCR 9", re.M)  # U-Boot measured, before it verifies


def boot(
    ctx: Context,
    rec: StageRecord,
    state: Path,
    console: Path,
    qemu_args: Callable[[Path], list[str]],
    *,
    stop_at: re.Pattern[str] = AGENT_DONE,
    timeout: float = 120.0,
) -> str:
    """Boot once; the console text is returned (and kept in ``console``); the TPM state keeps the PCRs."""
    runtime = Path(tempfile.mkdtemp(prefix="secure-iot-dev-"))  # a unix socket path must be short
    sock = runtime / "swtpm.sock"
    ioctl = setup_tool(ctx, "swtpm_ioctl")
    # A cold boot: power was off, so the volatile state a previous boot saved for the agent is gone.
    # Left in place, swtpm would resume from it and U-Boot would extend on top of the last boot's PCRs.
    (state / VOLATILE_STATE).unlink(missing_ok=True)
    try:
        args = ["socket", "--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={sock}"]
        tpm = runner.start(rec, ctx.tool("swtpm"), args, log=console.with_name("swtpm-boot.log"))
        try:
            deadline = time.monotonic() + 10
            while not sock.exists():
                if tpm.poll() is not None or time.monotonic() > deadline:
                    raise ToolError(f"swtpm did not open {sock} (exit {tpm.poll()})")
                time.sleep(POLL_S)
            console.unlink(missing_ok=True)
            # -no-shutdown: the guest's power-off pauses QEMU instead of ending it, so the TPM stays up
            # even when the kill below comes late (a loaded machine); QEMU is killed either way.
            qemu = runner.start(rec, ctx.tool("qemu-system-aarch64"), [*qemu_args(sock), "-no-shutdown"], log=console)
            try:
                text = _until(stop_at, qemu, console, timeout)
            finally:
                qemu.kill()  # SIGKILL, by PID: a clean exit would shut the TPM down and lose the PCRs
                qemu.wait(10)
            runner.run(rec, ioctl, ["--unix", str(sock), "-v"], timeout=30)  # save the volatile state (PCRs)
            runner.run(rec, ioctl, ["--unix", str(sock), "-s"], timeout=30)
            tpm.wait(10)
        finally:
            runner.stop(tpm)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return text


def _until(stop_at: re.Pattern[str], qemu: subprocess.Popen[bytes], console: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and qemu.poll() is None:
        text = console.read_text(errors="replace") if console.exists() else ""
        if stop_at.search(text):
            return text
        time.sleep(POLL_S)
    if qemu.poll() is not None:
        raise ToolError(f"QEMU exited ({qemu.returncode}) before the boot finished: the TPM state was shut down")
    raise ToolError(f"the boot said nothing decisive within {timeout:.0f} s")
