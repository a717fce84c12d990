"""The device key's policy, the pipeline's half: the policy authority, each build's approval, the counter.

A device key is created under PolicyAuthorize by the policy authority (an RSA-2048 key in
.keys/device-policy/, 0600, separate from the firmware and cosign keys; in production it lives in
an HSM and only its public key is provisioned). Each signed build ships one approval: the policy
digest of

    TPM2_PolicyPCR(sha256:8,9 = the build's expected values) ; TPM2_PolicyNV(rollback counter <= security version)

signed by the authority (RSASSA-SHA256, empty policyRef), inside the build's reference values, so
the pipeline's cosign signature covers it too. The digest is computed here by the real TPM: a trial
session on a throwaway swtpm whose counter is defined exactly as the factory defines it on every
device (the NV index's name enters PolicyNV). The fleet server recomputes it offline
(app/src/secure_iot_server/key_policy.py) and refuses a build whose approval differs.

On the device: `tpm2 verifysignature` turns the approval into a ticket, then one policy session
runs PolicyPCR, PolicyNV and PolicyAuthorize before `tpm2 sign`. Once a newer build is marked good
the device raises the counter (TPM2_NV_Increment, owner auth) to its security version; every older
approval then fails PolicyNV in the TPM. Only the owner hierarchy may read or raise the counter (no
authread/authwrite); raising it can only lock a device out (a denial of service by whoever holds
owner auth on the device), never let an old build back in.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord
from tasks.device.tpm2 import tpm2
from tasks.firmware import keys, swtpm
from tasks.firmware.measurements import BANK, FIT_PCR, KEY_PCR
from tasks.firmware.swtpm import Tpm

AUTHORITY_DIR = ".keys/device-policy"
AUTHORITY_BITS = 2048  # = the server's key_policy.AUTHORITY_BITS; tpm2 verifysignature -f rsassa
ROLLBACK_COUNTER = "0x01500020"  # owner NV range; the server computes its name from the same definition
COUNTER_ATTRIBUTES = "nt=counter|ownerread|ownerwrite|no_da"  # no authread/authwrite: owner auth only
POLICY_PCRS = f"{BANK}:{KEY_PCR},{FIT_PCR}"
MAX_RAISE = 256  # TPM2_NV_Increment adds one: a release more than this far ahead is refused, not looped on


@dataclass(frozen=True)
class Approval:
    """One build's approved policy digest, the authority's signature over it, and its counter bound."""

    policy: bytes
    signature: bytes
    counter_at_most: int

    @classmethod
    def of(cls, reference: Mapping[str, Any]) -> Approval:
        """The approval inside a reference-values document (the firmware stage writes it)."""
        try:
            found = reference["key_approval"]
            return cls(
                bytes.fromhex(str(found["policy"])),
                base64.b64decode(str(found["signature"]), validate=True),
                int(found["counter_at_most"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise InputError(
                f"reference values: no usable key_approval ({exc}); rebuild with `nox -s firmware`"
            ) from None

    def document(self) -> dict[str, Any]:
        return {
            "policy": self.policy.hex(),
            "signature": base64.b64encode(self.signature).decode(),
            "counter_at_most": self.counter_at_most,
            "nv_index": ROLLBACK_COUNTER,
            "pcrs": POLICY_PCRS,
        }


@dataclass(frozen=True)
class KeyUse:
    """What a device holds to use its key: the authority's public key (provisioned at the factory, like
    the update CA) and the approval shipped with the build it booted."""

    authority: Path
    approval: Approval


def authority(ctx: Context, rec: StageRecord) -> Path:
    """The policy authority's private key (made on first use, 0600, never overwritten); its public key
    beside it as authority.pub (what devices and the fleet server are given)."""
    key = keys.rsa_private_key(ctx, rec, ctx.root / AUTHORITY_DIR / "authority.key", AUTHORITY_BITS, "policy authority")
    public = key.with_name("authority.pub")
    if not public.exists():
        runner.run(rec, ctx.tool("openssl"), ["pkey", "-in", key, "-pubout", "-out", public])
    return key


def define_counter(ctx: Context, rec: StageRecord, tpm: Tpm, work: Path) -> None:
    """The anti-rollback counter, as the factory defines it in every device's TPM, written once. A TPM
    starts a new counter above every counter it ever held, so the factory checks it reads 1 (the lowest
    security version): a higher start would lock out every build below it."""
    tpm2(ctx, rec, tpm, ["nvdefine", ROLLBACK_COUNTER, "-C", "o", "-s", "8", "-a", COUNTER_ATTRIBUTES])
    tpm2(ctx, rec, tpm, ["nvincrement", "-C", "o", ROLLBACK_COUNTER])
    tpm2(ctx, rec, tpm, ["nvread", "-C", "o", "-s", "8", "-o", "counter.bin", ROLLBACK_COUNTER], cwd=work)
    value = int.from_bytes((work / "counter.bin").read_bytes(), "big")
    if value != 1:
        raise ToolError(
            f"the rollback counter {ROLLBACK_COUNTER} starts at {value}, not 1: this TPM held counters before"
        )


def operand(value: int) -> bytes:
    """PolicyNV's operandB for the 8-byte counter: big-endian."""
    return value.to_bytes(8, "big")


def approve(ctx: Context, rec: StageRecord, reference: Mapping[str, Any], key: Path) -> Approval:
    """The approval of one build: its digest from a trial session on a throwaway TPM, signed with ``key``."""
    security_version = int(reference["security_version"])
    if security_version < 1:
        raise InputError(f"security_version {security_version}: must be >= 1 (the TPM counter starts at 1)")
    pcrs = reference["pcrs"]
    with tempfile.TemporaryDirectory(prefix="secure-iot-approval-") as tmp:
        work = Path(tmp)
        atomic.write_bytes(work / "pcrs.bin", bytes.fromhex(str(pcrs[str(KEY_PCR)]) + str(pcrs[str(FIT_PCR)])))
        atomic.write_bytes(work / "at-most.bin", operand(security_version))
        swtpm.manufacture_state(ctx, rec, work / "tpm")
        with swtpm.running(ctx, rec, work / "tpm", work / "swtpm.log") as tpm:
            define_counter(ctx, rec, tpm, work)

            def run(*args: str) -> None:
                tpm2(ctx, rec, tpm, list(args), cwd=work)

            run("startauthsession", "-S", "trial.ctx")
            run("policypcr", "-S", "trial.ctx", "-l", POLICY_PCRS, "-f", "pcrs.bin")
            run(
                "policynv",
                "-S",
                "trial.ctx",
                "-C",
                "o",
                "-i",
                "at-most.bin",
                "-L",
                "approved.policy",
                ROLLBACK_COUNTER,
                "ule",
            )
            run("flushcontext", "trial.ctx")
        runner.run(
            rec,
            ctx.tool("openssl"),
            ["dgst", "-sha256", "-sign", key, "-out", work / "approved.sig", work / "approved.policy"],
        )
        return Approval((work / "approved.policy").read_bytes(), (work / "approved.sig").read_bytes(), security_version)
