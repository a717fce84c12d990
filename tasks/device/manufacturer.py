"""The manufacturer's CA (cryptography): it certifies each TPM's EK and signs the manufacturing manifest.

A real TPM vendor's EK certificate says "this key is the endorsement key of a genuine TPM we
made"; here the factory plays that vendor for swtpm. The CA key never leaves the factory
directory (it is not part of the manifest, nor of what the server is given: only its certificate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tasks.core import atomic
from tasks.core.errors import InputError

CA_YEARS = 20
EK_CERT_YEARS = 20
# TCG EK Credential Profile: the EK certificate's subjectAltName carries the TPM's manufacturer/model/version.
TCG_TPM_MANUFACTURER = x509.ObjectIdentifier("2.23.133.2.1")
TCG_EK_CERTIFICATE = x509.ObjectIdentifier("2.23.133.8.1")  # extendedKeyUsage of an EK certificate


@dataclass(frozen=True)
class Manufacturer:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def create(name: str, *, now: datetime | None = None) -> Manufacturer:
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, name), x509.NameAttribute(NameOID.COMMON_NAME, f"{name} EK CA")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Manufacturer(name, key, cert)


def save(manufacturer: Manufacturer, directory: Path) -> None:
    key = manufacturer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic.write_secret(directory / "manufacturer-ca.key", key)
    atomic.write_bytes(directory / "manufacturer-ca.pem", manufacturer.cert_pem)


def load(directory: Path) -> Manufacturer:
    return load_ca(directory / "manufacturer-ca.pem", directory / "manufacturer-ca.key")


def load_ca(cert_path: Path, key_path: Path) -> Manufacturer:
    """A CA (certificate and EC key, PEM) that issues certificates: the factory's, or the fleet CA."""
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{cert_path.parent}: no usable CA ({exc}); run `nox -s factory` first") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(f"{key_path}: expected an EC key")
    names = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Manufacturer(str(names[0].value) if names else "manufacturer", key, cert)


def ek_certificate(
    manufacturer: Manufacturer, ek_public_pem: bytes, device_id: str, *, now: datetime | None = None
) -> x509.Certificate:
    """An EK certificate for one TPM's endorsement key (RSA 2048 from swtpm_setup)."""
    now = now or datetime.now(UTC)
    ek = serialization.load_pem_public_key(ek_public_pem)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))  # the TCG profile leaves the subject empty; the SAN names the TPM
        .issuer_name(manufacturer.cert.subject)
        .public_key(ek)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * EK_CERT_YEARS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DirectoryName(x509.Name([x509.NameAttribute(TCG_TPM_MANUFACTURER, f"id:{device_id}")]))]
            ),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([TCG_EK_CERTIFICATE]), critical=False)
        .sign(manufacturer.key, hashes.SHA256())
    )
