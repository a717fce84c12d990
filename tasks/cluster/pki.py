"""The local control plane's own PKI: one CA, the serving and client certificates, the
service-account key. Made with `cryptography`, kept 0600 under the cluster's state directory,
valid for a day: a demo cluster, not a fleet."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tasks.core import atomic

VALIDITY = datetime.timedelta(days=1)
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _name(common_name: str, organization: str = "") -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    atomic.write_secret(path, pem)


def _load(pair: Pair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pair.key}: not an EC key")
    return cert, key


def certificate_authority(directory: Path, name: str = "secure-iot local control plane CA") -> Pair:
    pair = Pair(directory / "ca.crt", directory / "ca.key")
    if pair.cert.is_file() and pair.key.is_file():
        return pair
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(key, hashes.SHA256())
    )
    _write_key(pair.key, key)
    atomic.write_bytes(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def issue(
    ca: Pair,
    directory: Path,
    stem: str,
    common_name: str,
    *,
    organization: str = "",
    dns: tuple[str, ...] = (),
    ips: tuple[ipaddress.IPv4Address, ...] = (),
    server: bool = False,
    client: bool = False,
) -> Pair:
    """A leaf certificate signed by ``ca`` (a fresh key each time)."""
    ca_cert, ca_key = _load(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = [
        u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client)) if on
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.IPAddress(i) for i in ips]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    _write_key(pair.key, key)
    atomic.write_bytes(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def service_account_key(directory: Path) -> Pair:
    """The key pair kube-apiserver signs service-account tokens with (public half as 'cert')."""
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pair.key, key)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic.write_bytes(pair.cert, public)
    return pair
