"""A real measured boot into the device's own TPM: QEMU boots the firmware against the device's swtpm
state, then the TPM is handed, PCRs intact, to the agent on the host.

A clean QEMU exit shuts the TPM down and the PCRs are lost, so QEMU runs with -no-shutdown (a guest
power-off pauses it) and is stopped with SIGKILL (by PID) once the boot has said what it had to (the
agent finished, or U-Boot refused); ``swtpm.measured`` (tasks/firmware/swtpm.py) then saves the
volatile state and stops swtpm, and ``swtpm.running(resume=True)`` serves the same state to
tpm2-tools. The machine is the firmware's own (``qemu.qemu_args``): a device boots firmware.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.firmware import console_log, qemu, swtpm
from tasks.firmware.boot import with_slot_disk
from tasks.firmware.measurements import MEASURED_PCRS

if TYPE_CHECKING:
    import subprocess  # nosec B404 - the type of what runner.start returns; nothing is spawned here

POLL_S = 0.01
# Where a boot has said what it had to. Both are followed closely by a power-off (the guest's, or
# the boot command's after a refusal), which would shut the TPM down: QEMU is killed at once.
# The console milestones' own patterns, searched over the whole console text (line by line: re.M).
AGENT_DONE = re.compile(console_log.MILESTONES["agent-done"].pattern, re.M)  # a full boot: the agent finished
MEASURED = re.compile(console_log.MILESTONES["fit-measured"].pattern, re.M)  # U-Boot measured, before it verifies


def boot(
    ctx: Context,
    rec: StageRecord,
    state: Path,
    console: Path,
    machine: qemu.Device,
    *,
    stop_at: re.Pattern[str] = AGENT_DONE,
    timeout: float = 120.0,
) -> str:
    """Boot once; the console text is returned (and kept in ``console``); the TPM state keeps the PCRs.
    A machine given only a FIT boots it from a fresh slot disk beside the console (slot A)."""
    machine = with_slot_disk(ctx, rec, machine, console.with_name(console.stem + ".slots.img"))
    with swtpm.measured(ctx, rec, state, console.with_name("swtpm-boot.log")) as tpm:
        console.unlink(missing_ok=True)
        # -no-shutdown: the guest's power-off pauses QEMU instead of ending it, so the TPM stays up
        # even when the kill below comes late (a loaded machine); QEMU is killed either way.
        args = [*qemu.qemu_args(machine, tpm), "-no-shutdown"]
        proc = runner.start(rec, ctx.tool("qemu-system-aarch64"), args, log=console)
        try:
            text = _until(stop_at, proc, console, timeout)
        finally:
            proc.kill()  # SIGKILL, by PID: a clean exit would shut the TPM down and lose the PCRs
            proc.wait(10)
    return text


def event_log(console: str) -> list[tuple[int, str]]:
    """What U-Boot printed as it measured, as (PCR, digest) in the order it extended them: one digest for each
    of MEASURED_PCRS, or a ToolError (a boot that measured less, or a console that says more)."""
    digests = console_log.parse((0.0, line) for line in console.splitlines()).u_boot_digests
    if len(digests) != len(MEASURED_PCRS):
        raise ToolError(
            f"the boot printed {len(digests)} measurements, expected {len(MEASURED_PCRS)} "
            f"(PCRs {', '.join(map(str, MEASURED_PCRS))}): see its console log"
        )
    return list(zip(MEASURED_PCRS, digests, strict=True))


def _until(stop_at: re.Pattern[str], proc: subprocess.Popen[bytes], console: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = console.read_text(errors="replace") if console.exists() else ""
        if stop_at.search(text):
            return text
        time.sleep(POLL_S)
    if proc.poll() is not None:
        raise ToolError(f"QEMU exited ({proc.returncode}) before the boot finished: the TPM state was shut down")
    raise ToolError(f"the boot said nothing decisive within {timeout:.0f} s")
