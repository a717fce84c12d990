"""The reference device: QEMU's arm64 virt board with swtpm as its TPM, one set of machine options.

The device tree is dumped with exactly the options of the real boot (with -bios and with swtpm
running: QEMU then lists the TPM and swaps the PL061 GPIO for an ACPI GED device), so the tree
signed into the FIT describes the machine that boots it. Both processes are started through
the runner (their commands and PIDs in the evidence), talk over a unix socket only (-nic none),
and are stopped by their PIDs afterwards whatever happened. swtpm is started by
tasks/firmware/swtpm.py, in every way the pipeline runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.context import Context
from tasks.core import processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.firmware import swtpm
from tasks.firmware.swtpm import Tpm

if TYPE_CHECKING:
    import subprocess  # nosec B404 - the type of what runner.start returns; nothing is spawned here

FIT_ADDR = 0x48000000  # where the boot command reads a slot to (and the loader device places a FIT)
MACHINE = ("-cpu", "cortex-a57", "-smp", "1", "-m", "1G", "-nographic", "-nic", "none", "-no-reboot")
POLL_S = 0.02


@dataclass(frozen=True)
class Device:
    """What one boot runs: the boot loader, its control DTB (the root of trust here), and the slot disk
    (tasks/firmware/slots.py) the boot command loads a FIT from. ``fit`` is placed in RAM by QEMU's
    loader device: only Debian's stock U-Boot of the keyless-uboot case boots from there."""

    bios: Path
    dtb: Path | None
    fit: Path | None
    disk: Path | None = None


@dataclass
class BootRun:
    lines: list[tuple[float, str]] = field(default_factory=list)  # console, seconds since QEMU started
    exit_code: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    pids: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # how each process ended


def qemu_args(device: Device, tpm: Tpm, *, dumpdtb: Path | None = None) -> list[str]:
    machine = "virt" if dumpdtb is None else f"virt,dumpdtb={dumpdtb}"
    args = ["-machine", machine, *MACHINE, "-bios", str(device.bios)]
    args += ["-chardev", f"socket,id=chrtpm,path={tpm.control_socket}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm"]
    args += ["-device", "tpm-tis-device,tpmdev=tpm0"]
    if device.dtb is not None:
        args += ["-dtb", str(device.dtb)]
    if device.fit is not None:
        args += ["-device", f"loader,file={device.fit},addr={FIT_ADDR:#x},force-raw=on"]
    if device.disk is not None:
        if "," in str(device.disk):
            raise ToolError(f"{device.disk}: a comma in the slot disk's path would split QEMU's -drive option")
        args += ["-drive", f"file={device.disk},if=none,format=raw,id=slots"]
        args += ["-device", "virtio-blk-device,drive=slots"]
    return args


def dump_dtb(ctx: Context, rec: StageRecord, bios: Path, out: Path) -> Path:
    """QEMU's device tree for exactly the boot's options (with -bios, with the TPM present)."""
    run = BootRun()
    with swtpm.fresh(ctx, rec, out.with_name("swtpm-dump.log"), run.pids, run.stopped) as tpm:
        args = qemu_args(Device(bios, None, None), tpm, dumpdtb=out)
        runner.run(rec, ctx.tool("qemu-system-aarch64"), args, timeout=120)
    if not out.is_file():
        raise ToolError(f"qemu-system-aarch64 -machine virt,dumpdtb= wrote no {out}")
    return out


def boot(ctx: Context, rec: StageRecord, device: Device, raw_log: Path, *, timeout: float) -> BootRun:
    """One cold boot: fresh swtpm, QEMU until it powers off (or ``timeout``), both stopped by PID.

    The console is read as it is written, so each line carries the seconds since QEMU started.
    """
    run = BootRun()
    with swtpm.fresh(ctx, rec, raw_log.with_name("swtpm.log"), run.pids, run.stopped) as tpm:
        raw_log.unlink(missing_ok=True)
        t0 = time.monotonic()
        proc = runner.start(rec, ctx.tool("qemu-system-aarch64"), qemu_args(device, tpm), log=raw_log)
        run.pids["qemu"] = proc.pid
        try:
            _follow(proc, raw_log, t0, timeout, run)
        finally:
            run.stopped["qemu"] = processes.stop(proc, grace=1.0)
        run.exit_code, run.seconds = proc.returncode, round(time.monotonic() - t0, 3)
    return run


def _follow(proc: subprocess.Popen[bytes], log: Path, t0: float, timeout: float, run: BootRun) -> None:
    pending = b""
    while not log.exists():
        time.sleep(POLL_S)
    with log.open("rb") as handle:
        while True:
            done = proc.poll() is not None
            chunk = handle.read()
            now = round(time.monotonic() - t0, 3)
            *complete, pending = (pending + chunk).split(b"\n")
            run.lines += [(now, raw.decode(errors="replace").rstrip("\r")) for raw in complete]
            if done:
                break
            if now > timeout:
                run.timed_out = True
                break
            time.sleep(POLL_S)
    if pending:
        run.lines.append((round(time.monotonic() - t0, 3), pending.decode(errors="replace").rstrip("\r")))
