"""The device's TPM commands with tpm2-tools, run on the host against the device's own swtpm.

The guest initramfs carries no tpm2-tools, so the agent's TPM work runs here against the same
swtpm state the device owns (``swtpm.running``, tasks/firmware/swtpm.py: TPM2TOOLS_TCTI=swtpm:...).
Without a resource manager, transient objects and sessions are flushed after each step (a TPM
holds only three of each).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.evidence import StageRecord
from tasks.firmware.swtpm import Tpm

EK_HANDLE = "0x81010001"  # the RSA 2048 EK swtpm_setup --createek persists
EK_CERT_NV_INDEX = "0x01c00002"  # TCG: the RSA EK certificate's NV index


def tpm2(
    ctx: Context, rec: StageRecord, tpm: Tpm, args: Sequence[str | Path], *, cwd: Path | None = None
) -> runner.Completed:
    return runner.run(rec, ctx.tool("tpm2"), list(args), env=tpm.env, cwd=cwd, timeout=60)


def flush(ctx: Context, rec: StageRecord, tpm: Tpm) -> None:
    tpm2(ctx, rec, tpm, ["flushcontext", "--transient-object"])
    tpm2(ctx, rec, tpm, ["flushcontext", "--loaded-session"])
