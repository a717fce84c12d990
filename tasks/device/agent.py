"""The device agent's TPM work with tpm2-tools: EK certificate, AK, credential activation, measured boot, quote,
the device key under PolicyAuthorize and the anti-rollback counter (key_policy.py).

Runs on the host against the device's own swtpm (the guest initramfs has no tpm2-tools; see
README). The agent never decides anything: it answers the server's challenge with what only its
TPM can produce, and the server checks it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.device.key_policy import MAX_RAISE, POLICY_PCRS, ROLLBACK_COUNTER, Approval, operand
from tasks.device.tpm2 import EK_CERT_NV_INDEX, EK_HANDLE, flush, tpm2
from tasks.firmware import swtpm
from tasks.firmware.measurements import BANK, PCRS
from tasks.firmware.swtpm import Tpm

BOOT_PCRS = f"{BANK}:{','.join(map(str, PCRS))}"  # sha256:0,...,9
# The device key: born in the TPM, never leaves it (fixedTPM|fixedParent), signs, and has no
# userWithAuth: only a policy session approved by the policy authority (key_policy.py) authorises a
# signature. noda: no dictionary-attack lockout.
DEVICE_KEY_ATTRIBUTES = "fixedtpm|fixedparent|sensitivedataorigin|sign|noda"


@dataclass(frozen=True)
class Agent:
    ctx: Context
    rec: StageRecord
    tpm: Tpm
    work: Path  # the agent's scratch directory (AK context, credential, quote files)

    def _tpm2(self, *args: str | Path) -> str:
        return tpm2(self.ctx, self.rec, self.tpm, list(args), cwd=self.work).stdout

    def ek_certificate_pem(self) -> str:
        """The EK certificate the manufacturer wrote into the TPM's NV (TCG index 0x01c00002)."""
        self._tpm2("nvread", EK_CERT_NV_INDEX, "-C", "o", "-o", "ek-cert.der")
        der = (self.work / "ek-cert.der").read_bytes()
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()

    def create_ak(self) -> bytes:
        """An RSA restricted signing key under the EK; returns its TPM2B_PUBLIC."""
        self._tpm2(
            "createak",
            "-C",
            EK_HANDLE,
            "-c",
            "ak.ctx",
            "-G",
            "rsa",
            "-g",
            "sha256",
            "-s",
            "rsassa",
            "-u",
            "ak.pub",
            "-f",
            "tss",
            "-n",
            "ak.name",
            "-r",
            "ak.priv",
        )
        flush(self.ctx, self.rec, self.tpm)
        return (self.work / "ak.pub").read_bytes()

    def load_ak(self) -> None:
        """After a power-on (TPM reset): the AK made at registration, loaded again under the EK."""
        self._tpm2("startauthsession", "--policy-session", "-S", "session.ctx")
        self._tpm2("policysecret", "-S", "session.ctx", "-c", "e")
        try:
            self._tpm2(
                "load", "-C", EK_HANDLE, "-P", "session:session.ctx", "-u", "ak.pub", "-r", "ak.priv", "-c", "ak.ctx"
            )
        finally:
            flush(self.ctx, self.rec, self.tpm)

    def _storage_root(self) -> None:
        """The owner hierarchy's storage root key (ECC P-256, default template): the same key on every power-on."""
        self._tpm2("createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256", "-c", "srk.ctx")

    def _authority(self, authority: Path) -> None:
        """The policy authority's public key loaded into the owner hierarchy (a ticket from a key in the
        null hierarchy would not satisfy PolicyAuthorize): authority.ctx and its TPM name, authority.name."""
        self._tpm2(
            "loadexternal", "-C", "o", "-G", "rsa", "-u", authority, "-c", "authority.ctx", "-n", "authority.name"
        )

    def create_device_key(self, authority: Path) -> bytes:
        """The device key, created in the TPM under the SRK with PolicyAuthorize by ``authority`` (its
        public key, PEM): usable under any approval the authority signs, and no other; returns its
        TPM2B_PUBLIC (the server checks its authPolicy against the authority's key)."""
        try:
            self._authority(authority)
            self._tpm2("startauthsession", "-S", "trial.ctx")
            self._tpm2("policyauthorize", "-S", "trial.ctx", "-L", "key.policy", "-n", "authority.name")
        finally:
            flush(self.ctx, self.rec, self.tpm)
        self._storage_root()
        try:
            self._tpm2(
                "create",
                "-C",
                "srk.ctx",
                "-G",
                "ecc256:ecdsa-sha256",
                "-g",
                "sha256",
                "-L",
                "key.policy",
                "-a",
                DEVICE_KEY_ATTRIBUTES,
                "-u",
                "key.pub",
                "-r",
                "key.priv",
            )
        finally:
            flush(self.ctx, self.rec, self.tpm)
        return (self.work / "key.pub").read_bytes()

    def load_device_key(self) -> None:
        """The device key (its TPM-encrypted private blob, key.priv) loaded under the SRK as key.ctx."""
        self._storage_root()
        try:
            self._tpm2("load", "-C", "srk.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx")
        finally:
            flush(self.ctx, self.rec, self.tpm)

    def certify_device_key(self) -> tuple[bytes, bytes]:
        """TPM2_Certify of the device key by the AK: (TPMS_ATTEST, TPMT_SIGNATURE)."""
        self.load_device_key()
        try:
            self._tpm2(
                "certify",
                "-c",
                "key.ctx",
                "-C",
                "ak.ctx",
                "-g",
                "sha256",
                "-o",
                "certify.msg",
                "-s",
                "certify.sig",
                "-f",
                "tss",
            )
        finally:
            flush(self.ctx, self.rec, self.tpm)
        return (self.work / "certify.msg").read_bytes(), (self.work / "certify.sig").read_bytes()

    def sign_with_device_key(self, data: bytes, approval: Approval, authority: Path) -> bytes:
        """ECDSA-SHA256 (DER) by the device key, authorised by ``approval``: the TPM checks the authority's
        signature over it (a ticket), then PolicyPCR and PolicyNV must reproduce the approved digest and
        PolicyAuthorize turns it into the key's policy. The TPM refuses (a ToolError here) unless PCRs 8
        and 9 are the approved build's and the rollback counter has not moved past its security version."""
        self.load_device_key()
        atomic.write_bytes(self.work / "to-sign.bin", data)
        atomic.write_bytes(self.work / "approved.policy", approval.policy)
        atomic.write_bytes(self.work / "approved.sig", approval.signature)
        atomic.write_bytes(self.work / "at-most.bin", operand(approval.counter_at_most))
        for name in ("signed.der", "approved.ticket"):
            (self.work / name).unlink(missing_ok=True)
        try:
            self._authority(authority)
            self._tpm2(
                "verifysignature",
                "-c",
                "authority.ctx",
                "-g",
                "sha256",
                "-m",
                "approved.policy",
                "-s",
                "approved.sig",
                "-f",
                "rsassa",
                "-t",
                "approved.ticket",
            )
        finally:
            flush(self.ctx, self.rec, self.tpm)
        self._tpm2("startauthsession", "--policy-session", "-S", "key-session.ctx")
        try:
            self._tpm2("policypcr", "-S", "key-session.ctx", "-l", POLICY_PCRS)
            self._tpm2("policynv", "-S", "key-session.ctx", "-C", "o", "-i", "at-most.bin", ROLLBACK_COUNTER, "ule")
            self._tpm2(
                "policyauthorize",
                "-S",
                "key-session.ctx",
                "-i",
                "approved.policy",
                "-n",
                "authority.name",
                "-t",
                "approved.ticket",
            )
            self._tpm2(
                "sign",
                "-c",
                "key.ctx",
                "-p",
                "session:key-session.ctx",
                "-g",
                "sha256",
                "-f",
                "plain",
                "-o",
                "signed.der",
                "to-sign.bin",
            )
        finally:
            flush(self.ctx, self.rec, self.tpm)
        return (self.work / "signed.der").read_bytes()

    def rollback_counter(self) -> int:
        self._tpm2("nvread", "-C", "o", "-s", "8", "-o", "counter.bin", ROLLBACK_COUNTER)
        return int.from_bytes((self.work / "counter.bin").read_bytes(), "big")

    def raise_rollback_counter(self, security_version: int) -> int:
        """After a build is marked good: the counter raised to its security version (never lowered; one
        TPM2_NV_Increment at a time). Every approval for an older security version fails from then on."""
        value = self.rollback_counter()
        if security_version - value > MAX_RAISE:
            raise ToolError(f"counter at {value}: refusing to raise it by more than {MAX_RAISE} to {security_version}")
        while value < security_version:
            self._tpm2("nvincrement", "-C", "o", ROLLBACK_COUNTER)
            value = self.rollback_counter()
        return value

    def activate_credential(self, credential: bytes) -> bytes:
        """TPM2_ActivateCredential with the EK (policy: endorsement secret): the server's secret, if ours."""
        atomic.write_bytes(self.work / "credential.in", credential)
        (self.work / "credential.out").unlink(missing_ok=True)
        self._tpm2("startauthsession", "--policy-session", "-S", "session.ctx")
        self._tpm2("policysecret", "-S", "session.ctx", "-c", "e")
        try:
            self._tpm2(
                "activatecredential",
                "-c",
                "ak.ctx",
                "-C",
                EK_HANDLE,
                "-i",
                "credential.in",
                "-o",
                "credential.out",
                "-P",
                "session:session.ctx",
            )
        finally:
            flush(self.ctx, self.rec, self.tpm)
        return (self.work / "credential.out").read_bytes()

    def extend(self, events: list[tuple[int, str]]) -> None:
        """Measured boot replayed into the TPM: each (PCR, sha256 digest) of the boot's event log."""
        for pcr, digest in events:
            self._tpm2("pcrextend", f"{pcr}:sha256={digest}")

    def quote(self, nonce: bytes) -> tuple[bytes, bytes]:
        """TPM2_Quote over PCRs 0-9 (sha256) with the server's nonce: (TPMS_ATTEST, TPMT_SIGNATURE)."""
        self._tpm2(
            "quote",
            "-c",
            "ak.ctx",
            "-l",
            BOOT_PCRS,
            "-q",
            nonce.hex(),
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-g",
            "sha256",
        )
        flush(self.ctx, self.rec, self.tpm)
        return (self.work / "quote.msg").read_bytes(), (self.work / "quote.sig").read_bytes()


@contextlib.contextmanager
def resumed(ctx: Context, rec: StageRecord, state: Path, work: Path) -> Iterator[Agent]:
    """The agent on the device's TPM as its last measured boot left it (PCRs intact, swtpm resumed
    from the saved volatile state); the TPM is shut down in order and stopped on the way out."""
    with swtpm.running(ctx, rec, state, work / "swtpm.log", resume=True) as tpm:
        yield Agent(ctx, rec, tpm, work)
