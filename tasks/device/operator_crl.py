"""The operator CA's CRL in a fleet server's trust directory: the first one, and the next on a revocation.

The fleet server (app/src/secure_iot_server/operator_revocation.py) requires trust/operator-ca/<name>.crl.pem
beside each operator CA trust/operator-ca/<name>.pem, refuses to start without a current one signed by that
CA, and re-reads it when the file changes: a stolen operator certificate is refused from the next request on,
without a restart. The CRL is the format the network edge takes for the operator CA
(``nox -s network -- crl --file``, tasks/network/crl.py): a CRL number, an authorityKeyIdentifier naming the
CA's key, thisUpdate CLOCK_SKEW back. Each revocation issues the next number with every earlier entry, written
atomically (the server reads the old CRL or the new one, never half).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tasks.core import atomic
from tasks.core.errors import InputError
from tasks.device import revocations
from tasks.device.manufacturer import Manufacturer

CRL_SUFFIX = ".crl.pem"
VALIDITY = timedelta(days=30)  # past it the server refuses every operator: re-issue (revoke) within it
CLOCK_SKEW = timedelta(minutes=5)  # thisUpdate back by this much: a reader whose clock is behind still takes it


def crl_path(ca_path: Path) -> Path:
    """operator-ca/<name>.pem -> operator-ca/<name>.crl.pem"""
    return ca_path.with_name(ca_path.name.removesuffix(".pem") + CRL_SUFFIX)


def ca_certificates(directory: Path) -> list[Path]:
    """The operator CA certificates in a trust directory's operator-ca/: every *.pem but the CRLs."""
    return sorted(p for p in directory.glob("*.pem") if not p.name.endswith(CRL_SUFFIX))


def issue(ca: Manufacturer, revoked: list[x509.RevokedCertificate], number: int) -> bytes:
    """A PEM CRL of ``ca`` listing ``revoked``, valid VALIDITY from now."""
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def write_first(ca: Manufacturer, ca_path: Path) -> Path:
    """The CA's first CRL (number 1, nobody revoked) beside its certificate."""
    target = crl_path(ca_path)
    atomic.write_bytes(target, issue(ca, [], 1))
    return target


def revoke(ca: Manufacturer, ca_path: Path, certificate: x509.Certificate) -> int:
    """Issue the CRL after the one beside ``ca_path``: its entries, ``certificate`` added, the number + 1.
    Returns the new number; InputError if the CRL in place is not this CA's."""
    target = crl_path(ca_path)
    try:
        current = x509.load_pem_x509_crl(target.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{target}: no readable CRL in place ({exc})") from None
    if current.issuer != ca.cert.subject or not current.is_signature_valid(ca.key.public_key()):
        raise InputError(f"{target}: not signed by {ca.cert.subject.rfc4514_string()}; not extending it")
    entries = list(current)
    if all(entry.serial_number != certificate.serial_number for entry in entries):
        entry = x509.RevokedCertificateBuilder().serial_number(certificate.serial_number)
        entries.append(entry.revocation_date(datetime.now(UTC).replace(microsecond=0)).build())
    number = revocations.number_of(current) + 1
    atomic.write_bytes(target, issue(ca, entries, number))
    return number
