"""Client identities for driving the app in-process: CA-issued certificates placed in the ASGI scope
exactly where identity.PeerCertH11Protocol puts the one the TLS layer verified."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from secure_iot_server.operator_revocation import OperatorCA, load_all


def ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def leaf(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], name: str, *, server: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(issuer[1], hashes.SHA256()), key


def ek_certificate(
    manufacturer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> tuple[x509.Certificate, str]:
    """An RSA-2048 endorsement key's certificate as a TPM manufacturer issues one (no TPM behind it): the
    certificate and its PEM."""
    _, cert, pem = endorsement_key(manufacturer)
    return cert, pem


def endorsement_key(
    manufacturer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> tuple[rsa.RSAPrivateKey, x509.Certificate, str]:
    """ek_certificate with its private key, for a test that must answer a credential as the TPM would
    (tests/support/credential.py)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(manufacturer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(manufacturer[1], hashes.SHA256())
    )
    return key, cert, cert.public_bytes(serialization.Encoding.PEM).decode()


def with_client_certificate(app: Any, cert: x509.Certificate | None) -> Any:
    der = cert.public_bytes(serialization.Encoding.DER) if cert is not None else None

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("extensions", {})["tls"] = {"client_cert_der": der}
        await app(scope, receive, send)

    return wrapped


OPERATOR_CA = ca("test operator CA")
OPERATOR = leaf(OPERATOR_CA, "operator alice")


def crl(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    revoked: list[x509.Certificate],
    *,
    number: int,
    valid_for: timedelta = timedelta(minutes=5),
    key_identifier: bool = True,
) -> bytes:
    """A PEM CRL as the fleet server publishes one: CRL number, authorityKeyIdentifier (strongSwan finds a
    CA's CRL only by it; ``key_identifier=False`` leaves it out), thisUpdate 5 min back. Negative
    ``valid_for``: stale."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer[0].subject)
        .last_update(min(now, now + valid_for) - timedelta(minutes=5))
        .next_update(now + valid_for)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if key_identifier:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key())
        builder = builder.add_extension(aki, critical=False)
    for cert in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(issuer[1], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def operator_cas(
    directory: Path, revoked: list[x509.Certificate] | None = None, *, number: int = 1
) -> list[OperatorCA]:
    """OPERATOR_CA as a trust directory gives it to the server: operator-ca/ops.pem and its CRL (``revoked``,
    ``number``, valid a day) beside it, loaded by the server's own code."""
    where = directory / "operator-ca"
    where.mkdir(parents=True, exist_ok=True)
    (where / "ops.pem").write_bytes(OPERATOR_CA[0].public_bytes(serialization.Encoding.PEM))
    (where / "ops.crl.pem").write_bytes(crl(OPERATOR_CA, revoked or [], number=number, valid_for=timedelta(days=1)))
    return load_all(where)
