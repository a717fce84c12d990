"""A throwaway fleet PKI for the device network (the real one comes from enrolment): a CA and its CRLs, the edge's,
the fleet server's and the devices' identities, and the fleet server's trust directory. Shared by the network tests
and bench/network.py."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tasks.core import atomic
from tests.support.identities import crl

BROKER = ("10.60.2.10", 8443)
GOOD_ID = "sid-0000000001"  # the enrolled device's id: the CN the fleet server's registration gives it
# the fleet CA's leaf identities (dev-good is then re-issued through the server's registration code; dev-rogue is
# self-signed); dev-victim and dev-courier-ike are the ones the quarantine tests revoke while they are admitted
LEAVES = ("edge", "dev-good", "dev-peer", "dev-spoof", "dev-revoked", "dev-victim", "dev-courier", "dev-courier-ike")
OPERATORS = ("op-alice", "op-stolen")  # the operator CA's: op-stolen is the certificate someone else got hold of


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    atomic.write_secret(path, pem)


def _cert(
    path: Path,
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    address: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    if address is not None:  # the fleet server's certificate names its address in the fleet zone
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address(address))])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


@dataclass(frozen=True)
class Fleet:
    """A throwaway fleet CA (the real one comes from #14's enrolment): CA, CRL, edge, server and device identities."""

    directory: Path

    @property
    def trust(self) -> Path:
        """The fleet server's SECURE_IOT_TRUST_DIR."""
        return self.directory / "trust"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def _enrol(directory: Path, trust: Path) -> None:
    """dev-good's certificate as the fleet server issues it at registration (#14's code, for its public key)."""
    from secure_iot_server.registration import issue_device_certificate
    from secure_iot_server.trust import load_trust

    key = serialization.load_pem_private_key((directory / "dev-good.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = issue_device_certificate(load_trust(trust), GOOD_ID, key.public_key())
    (directory / "dev-good.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_fleet(directory: Path) -> Fleet:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(directory / "ca.key", ca_key)
    ca = _cert(directory / "ca.pem", "test fleet CA", ca_key, _name("test fleet CA"), ca_key, ca=True)
    for name in LEAVES:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(directory / f"{name}.key", key)
        _cert(directory / f"{name}.pem", name, key, ca.subject, ca_key, ca=False)
    operator_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(directory / "operator-ca.key", operator_key)
    operators = _cert(
        directory / "operator-ca.pem",
        "test operator CA",
        operator_key,
        _name("test operator CA"),
        operator_key,
        ca=True,
    )
    for name in OPERATORS:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(directory / f"{name}.key", key)
        _cert(directory / f"{name}.pem", name, key, operators.subject, operator_key, ca=False)
    rogue = ec.generate_private_key(ec.SECP256R1())  # self-signed: same name, no fleet CA behind it
    _write_key(directory / "dev-rogue.key", rogue)
    _cert(directory / "dev-rogue.pem", GOOD_ID, rogue, _name(GOOD_ID), rogue, ca=False)
    server = ec.generate_private_key(ec.SECP256R1())
    _write_key(directory / "fleet-server.key", server)
    _cert(directory / "fleet-server.pem", "fleet-server", server, ca.subject, ca_key, ca=False, address=BROKER[0])
    trust = directory / "trust"
    for sub in ("manufacturer-ca", "operator-ca", "reference-values"):
        (trust / sub).mkdir(parents=True)
    maker = ec.generate_private_key(ec.SECP256R1())
    _cert(trust / "manufacturer-ca" / "maker.pem", "test EK CA", maker, _name("test EK CA"), maker, ca=True)
    pipeline = ec.generate_private_key(ec.SECP256R1()).public_key()
    (trust / "pipeline-cosign.pub").write_bytes(
        pipeline.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    authority = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    (trust / "device-policy.pub").write_bytes(
        authority.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    shutil.copyfile(directory / "ca.pem", trust / "fleet-ca.pem")
    shutil.copyfile(directory / "operator-ca.pem", trust / "operator-ca" / "operators.pem")
    atomic.write_secret(trust / "fleet-ca.key", (directory / "ca.key").read_bytes())
    fleet = Fleet(directory)
    (directory / "crl.pem").write_bytes(
        revocation_list(fleet, ["dev-revoked"], number=1, valid_for=dt.timedelta(days=1))
    )
    (directory / "operator-crl.pem").write_bytes(
        revocation_list(fleet, [], number=1, valid_for=dt.timedelta(days=1), issuer="operator-ca")
    )
    # the fleet server requires its operator CA's CRL beside it (the edge's first one, as the same CA issues both)
    shutil.copyfile(directory / "operator-crl.pem", trust / "operator-ca" / "operators.crl.pem")
    _enrol(directory, trust)
    return fleet


def revocation_list(
    fleet: Fleet,
    revoked: list[str],
    *,
    number: int,
    valid_for: dt.timedelta = dt.timedelta(minutes=5),
    issuer: str = "ca",
) -> bytes:
    """A PEM CRL of the fleet CA (``issuer``: or the operator CA's, "operator-ca") revoking the named identities
    (tests/support/identities.crl). Negative ``valid_for``: stale."""
    ca = x509.load_pem_x509_certificate(fleet.cert(issuer).read_bytes())
    key = serialization.load_pem_private_key(fleet.key(issuer).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    certs = [x509.load_pem_x509_certificate(fleet.cert(name).read_bytes()) for name in revoked]
    return crl((ca, key), certs, number=number, valid_for=valid_for)
