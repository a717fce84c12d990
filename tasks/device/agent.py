"""The device agent's TPM work with tpm2-tools: EK certificate, AK, credential activation, measured boot, quote.

Runs on the host against the device's own swtpm (the guest initramfs has no tpm2-tools; see
README). The agent never decides anything: it answers the server's challenge with what only its
TPM can produce, and the server checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.context import Context
from tasks.core import atomic
from tasks.core.evidence import StageRecord
from tasks.device.swtpm import EK_CERT_NV_INDEX, EK_HANDLE, Tpm, flush, tpm2

BOOT_PCRS = "sha256:0,1,2,3,4,5,6,7,8,9"


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
        self._tpm2("createak", "-C", EK_HANDLE, "-c", "ak.ctx", "-G", "rsa", "-g", "sha256", "-s", "rsassa",
                   "-u", "ak.pub", "-f", "tss", "-n", "ak.name", "-r", "ak.priv")  # fmt: skip
        flush(self.ctx, self.rec, self.tpm)
        return (self.work / "ak.pub").read_bytes()

    def activate_credential(self, credential: bytes) -> bytes:
        """TPM2_ActivateCredential with the EK (policy: endorsement secret): the server's secret, if ours."""
        atomic.write_bytes(self.work / "credential.in", credential)
        (self.work / "credential.out").unlink(missing_ok=True)
        self._tpm2("startauthsession", "--policy-session", "-S", "session.ctx")
        self._tpm2("policysecret", "-S", "session.ctx", "-c", "e")
        try:
            self._tpm2("activatecredential", "-c", "ak.ctx", "-C", EK_HANDLE, "-i", "credential.in",
                       "-o", "credential.out", "-P", "session:session.ctx")  # fmt: skip
        finally:
            flush(self.ctx, self.rec, self.tpm)
        return (self.work / "credential.out").read_bytes()

    def extend(self, events: list[tuple[int, str]]) -> None:
        """Measured boot replayed into the TPM: each (PCR, sha256 digest) of the boot's event log."""
        for pcr, digest in events:
            self._tpm2("pcrextend", f"{pcr}:sha256={digest}")

    def quote(self, nonce: bytes) -> tuple[bytes, bytes]:
        """TPM2_Quote over PCRs 0-9 (sha256) with the server's nonce: (TPMS_ATTEST, TPMT_SIGNATURE)."""
        self._tpm2("quote", "-c", "ak.ctx", "-l", BOOT_PCRS, "-q", nonce.hex(), "-m", "quote.msg", "-s", "quote.sig",
                   "-g", "sha256")  # fmt: skip
        flush(self.ctx, self.rec, self.tpm)
        return (self.work / "quote.msg").read_bytes(), (self.work / "quote.sig").read_bytes()
