"""Operator certificates, revocable: each operator CA with its CRL, re-read when the file changes.

trust/operator-ca/<name>.pem is an operator CA; <name>.crl.pem beside it (PEM or DER) is its CRL,
required: the server does not start with an operator CA whose CRL is missing, not signed by that
CA, without a CRL number, or past its nextUpdate (CRLError, one line). A stolen operator
certificate is refused by issuing the next CRL (a higher CRL number) into that file: no restart.

On each operator request the file is stat'ed (inode, size, mtime_ns); only when that changed is it
read again, and the new CRL replaces the one held if it is that CA's (issuer and signature) and its
number is not lower than the held one's. Anything else (unreadable, foreign, older: a replayed CRL
that would un-revoke someone, or the file deleted) is refused with a warning and the held CRL stays.
A held CRL past its nextUpdate refuses every operator of that CA (fail closed) until a current one
is put in place.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from .identity import issued_by, load_certificate

if TYPE_CHECKING:
    from collections.abc import Sequence

CRL_SUFFIX = ".crl.pem"
STALE, REVOKED = "operator CRL stale", "operator certificate revoked"
log = logging.getLogger(__name__)


class CRLError(ValueError):
    """An operator CA's CRL is missing, unreadable, not that CA's, or not current."""


@dataclass(frozen=True)
class _Held:
    number: int
    revoked: frozenset[int]  # serial numbers
    next_update: datetime
    stamp: tuple[int, int, int, int]  # the file it was read from: device, inode, size, mtime_ns


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def crl_path(ca_path: Path) -> Path:
    """operator-ca/<name>.pem -> operator-ca/<name>.crl.pem"""
    return ca_path.with_name(ca_path.name.removesuffix(".pem") + CRL_SUFFIX)


def ca_paths(directory: Path) -> list[Path]:
    """The operator CA certificates in ``directory`` (operator-ca/): every *.pem that is not a CRL."""
    return sorted(p for p in directory.glob("*.pem") if not p.name.endswith(CRL_SUFFIX))


class OperatorCA:
    """One operator CA and the CRL it holds for it (thread-safe: requests run in a thread pool)."""

    def __init__(self, ca: x509.Certificate, crl: Path) -> None:
        self.ca, self.crl = ca, crl
        self._lock = threading.Lock()
        self._held = self._read()  # CRLError: the server does not start
        if datetime.now(UTC) >= self._held.next_update:
            raise CRLError(f"{crl.name}: expired (nextUpdate {self._held.next_update}): issue a current CRL")
        self._seen: tuple[int, int, int, int] | None = self._held.stamp

    @classmethod
    def load(cls, ca_path: Path) -> OperatorCA:
        try:
            ca = load_certificate(ca_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CRLError(f"{ca_path.name}: not an operator CA certificate ({exc})") from None
        return cls(ca, crl_path(ca_path))

    def refusal(self, cert: x509.Certificate) -> str | None:
        """Why this CA's ``cert`` is refused now (stale CRL, revoked), or None."""
        held = self._current()
        if datetime.now(UTC) >= held.next_update:
            return f"{STALE} (nextUpdate {held.next_update:%Y-%m-%dT%H:%M:%SZ}): every operator refused until renewed"
        if cert.serial_number in held.revoked:
            return f"{REVOKED} (CRL number {held.number})"
        return None

    def _current(self) -> _Held:
        try:
            stamp: tuple[int, int, int, int] | None = _stamp(self.crl.stat())
        except OSError:
            stamp = None
        with self._lock:
            if stamp == self._seen:
                return self._held
            self._seen = stamp
            try:
                read = self._read()
            except CRLError as exc:
                log.warning("%s; keeping CRL number %d", exc, self._held.number)
                return self._held
            self._seen = read.stamp
            if read.number < self._held.number:
                held = self._held.number
                log.warning("%s: CRL number %d is older than the one held (%d): refused", self.crl, read.number, held)
                return self._held
            self._held = read
            return read

    def _read(self) -> _Held:
        try:
            with self.crl.open("rb") as handle:
                stamp = _stamp(os.fstat(handle.fileno()))
                data = handle.read()
        except OSError as exc:
            raise CRLError(f"{self.crl.name}: the operator CA's CRL is required ({exc.strerror})") from None
        crl = _parse(data, self.crl.name)
        signed = crl.issuer == self.ca.subject
        try:
            signed = signed and crl.is_signature_valid(self.ca.public_key())  # type: ignore[arg-type]
        except TypeError:  # a CA key type that signs no CRL
            signed = False
        if not signed:
            raise CRLError(f"{self.crl.name}: not signed by the operator CA {self.ca.subject.rfc4514_string()}")
        if crl.next_update_utc is None:
            raise CRLError(f"{self.crl.name}: no nextUpdate (a CRL must say until when it is current)")
        try:
            number = int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        except (x509.ExtensionNotFound, ValueError):
            raise CRLError(f"{self.crl.name}: no CRL number (a newer CRL must be told from an older one)") from None
        revoked = frozenset(entry.serial_number for entry in crl)
        return _Held(number, revoked, crl.next_update_utc, stamp)


def _parse(data: bytes, name: str) -> x509.CertificateRevocationList:
    try:  # an unknown version is cryptography's InvalidVersion, no ValueError
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise CRLError(f"{name}: not an X.509 CRL, PEM or DER ({exc})") from None


def load_all(directory: Path) -> list[OperatorCA]:
    """Every operator CA in ``directory`` (trust/operator-ca/) with its CRL; CRLError for the first that fails,
    also for a CRL with no CA beside it (a renamed CA would otherwise lose its CRL silently)."""
    cas = ca_paths(directory)
    orphans = {p.name for p in directory.glob(f"*{CRL_SUFFIX}")} - {crl_path(p).name for p in cas}
    if orphans:
        orphan = min(orphans)
        raise CRLError(f"{orphan}: no operator CA certificate beside it ({orphan.removesuffix(CRL_SUFFIX)}.pem)")
    return [OperatorCA.load(p) for p in cas]


def refusal(operators: Sequence[OperatorCA], cert: x509.Certificate) -> str | None:
    """Why an operator certificate is refused: every operator CA that issued it must admit it."""
    issuers = [o for o in operators if issued_by(cert, o.ca)]
    if not issuers:
        return "not issued by an operator CA"
    return next((reason for o in issuers if (reason := o.refusal(cert)) is not None), None)
