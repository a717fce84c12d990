"""A quarantine at the fleet server reaches the OTA repository within the refresh interval (#29).

The real fleet server process (mTLS on 127.0.0.1) publishes the fleet CA's CRL; the repository's
CRL is kept fresh by ``revocations.refreshing``; the device's TLS identity is the fleet-CA
certificate registration issues for a key the device made (a TPM-held, policy-only key cannot do
TLS here, README), revoked with its registration certificate when the device is quarantined.
Measured: from the quarantine to the first refused handshake.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from secure_iot_server.enrolment_store import EnrolmentStore

from tasks import ota
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.device import fleet_server, manufacturer, revocations
from tests.support.identities import ca, leaf
from tests.support.project import REPO

pytestmark = pytest.mark.slow
REFRESH_S = 0.5


def pem_public(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_leaf(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], name: str, where: Path, **kw: bool
) -> tuple[Path, Path]:
    cert, key = leaf(issuer, name, **kw)
    (where / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (where / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return where / f"{name}.pem", where / f"{name}.key"


def test_a_quarantine_reaches_the_repository_within_the_refresh_interval(tmp_path: Path) -> None:
    rec = StageRecord(stage="quarantine-doors", root=REPO)
    maker = manufacturer.create("ACME")
    authority = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pipeline = ec.generate_private_key(ec.SECP256R1()).public_key()
    server = fleet_server.prepare(tmp_path / "fleet", maker.cert_pem, pem_public(pipeline), pem_public(authority), [])
    fleet_key = serialization.load_pem_private_key((server.trust / "fleet-ca.key").read_bytes(), password=None)
    assert isinstance(fleet_key, ec.EllipticCurvePrivateKey)
    fleet = (x509.load_pem_x509_certificate((server.trust / "fleet-ca.pem").read_bytes()), fleet_key)
    certs = tmp_path / "certs"
    certs.mkdir()
    repo_ca = ca("update server CA")
    (certs / "repo-ca.pem").write_bytes(repo_ca[0].public_bytes(serialization.Encoding.PEM))
    device = ota.DeviceTls(*write_leaf(fleet, "sid-0000000042", certs), certs / "repo-ca.pem")
    repository = tmp_path / "repository"
    (repository / "metadata").mkdir(parents=True)
    (repository / "metadata" / "timestamp.json").write_text("{}")
    crl = tmp_path / "fleet-ca.crl.pem"
    tls = ota.ServerTls(*write_leaf(repo_ca, "repository", certs, server=True), server.trust / "fleet-ca.pem", crl)

    with fleet_server.serving(rec, server, REPO / "app" / "src", min_security_version=0) as url:
        with pytest.raises(InputError, match="https only"):
            revocations.refresh(
                url.replace("https", "http"), server.home / "server-ca.pem", server.trust / "fleet-ca.pem", crl
            )
        store = EnrolmentStore(server.home / "fleet.db")
        store.attest(
            {
                "device_id": "sid-0000000042",
                "certificate_pem": device.cert.read_text(),
                "firmware_version": "1.1.0",
                "security_version": 2,
                "fit_sha256": "00" * 32,
                "ak_public": b"ak",
                "key_public": b"key",
                "certificate_serial": "1",  # the registration certificate's (the TPM key's): not what TLS shows
                "tls_certificate_serial": format(
                    x509.load_pem_x509_certificate(device.cert.read_bytes()).serial_number, "x"
                ),
            }
        )
        fetched = (server.home / "server-ca.pem", server.trust / "fleet-ca.pem", crl)
        with (
            revocations.refreshing(url, *fetched, every=REFRESH_S) as failures,
            ota.serve(rec, repository, tmp_path / "repository.log", tls=tls) as repo_url,
        ):
            assert ota.serves(repo_url, device)
            store.quarantine("sid-0000000042", "reference-values: measurements match no signed firmware build")
            quarantined_at = time.monotonic()
            while ota.serves(repo_url, device):
                assert time.monotonic() - quarantined_at < 10 * REFRESH_S, "the repository still serves the device"
                time.sleep(0.05)
            lag = time.monotonic() - quarantined_at
        assert failures == []
    listed = x509.load_pem_x509_crl(crl.read_bytes())
    assert listed.next_update_utc is not None and listed.next_update_utc > datetime.now(UTC)
    assert lag < 10 * REFRESH_S
    print(f"quarantine -> refused at the repository: {lag:.2f} s (refresh every {REFRESH_S} s)")
