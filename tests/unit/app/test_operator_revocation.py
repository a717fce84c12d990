"""A stolen operator certificate is refused at the fleet server, without a restart (F11-F14).

Each operator CA's CRL (trust/operator-ca/<name>.crl.pem) is read by the server's own code from real
files, verified with real signatures, and re-read when the file changes; the operators reach the app
in-process with their certificate where the TLS layer puts it (tests/integration/test_operator_revocation_mtls.py
does the same over real mTLS against the server process).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.database import prepare
from secure_iot_server.enrolment_store import EnrolmentStore
from secure_iot_server.registration import MANIFEST_TYPE, ManifestError, Trust, load_manifest

from tasks.core import atomic
from tests.support.identities import OPERATOR, OPERATOR_CA, ca, crl, ek_certificate, leaf, operator_cas

if TYPE_CHECKING:
    from pathlib import Path

    from secure_iot_server.operator_revocation import OperatorCA

BOB = leaf(OPERATOR_CA, "operator bob")  # a second operator of the same CA, not revoked
DEVICE = {
    "id": "sensor-001",
    "model": "TH-100",
    "firmware_version": "1.4.2",
    "public_key_pem": ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode(),
}


def as_client(app: Any, der: bytes) -> TestClient:
    """The app as reached with this client certificate (DER, as the TLS layer passes it)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("extensions", {})["tls"] = {"client_cert_der": der}
        await app(scope, receive, send)

    return TestClient(wrapped)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def fleet(tmp_path: Path, operators: list[OperatorCA]) -> tuple[TestClient, TestClient]:
    """alice (OPERATOR) and bob, both operators of OPERATOR_CA, on one app."""
    app = create_app(Settings(db_path=tmp_path / "devices.db"), operator_cas=operators)
    return as_client(app, der(OPERATOR[0])), as_client(app, der(BOB[0]))


def plant(tmp_path: Path, pem: bytes) -> None:
    """A CRL put in place as an operator (or an attacker with write access) would: atomically."""
    atomic.write_bytes(tmp_path / "operator-ca" / "ops.crl.pem", pem)


def test_f11_a_revoked_operator_is_refused_at_the_next_request_and_it_does_nothing(tmp_path: Path) -> None:
    alice, bob = fleet(tmp_path, operator_cas(tmp_path))
    assert alice.post("/devices", json=DEVICE).status_code == 201

    plant(tmp_path, crl(OPERATOR_CA, [OPERATOR[0]], number=2, valid_for=timedelta(days=1)))
    refused = alice.delete("/devices/sensor-001")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("operator certificate revoked")
    assert bob.get("/devices/sensor-001").status_code == 200  # the refused delete did nothing
    assert bob.get("/devices").status_code == 200  # the other operator of that CA is not affected


@pytest.mark.parametrize(
    "planted",
    [
        lambda: crl(OPERATOR_CA, [], number=1, valid_for=timedelta(days=1)),  # the older CRL, replayed
        lambda: crl(ca("test operator CA"), [], number=9, valid_for=timedelta(days=1)),  # same name, another key
        lambda: b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",  # not a CRL
        lambda: der(OPERATOR[0]),  # a certificate, DER
    ],
    ids=["older", "foreign", "garbage", "not-a-crl"],
)
def test_f12_a_crl_that_would_undo_a_revocation_is_refused_and_the_revocation_stays(
    tmp_path: Path, planted: Any
) -> None:
    alice, bob = fleet(tmp_path, operator_cas(tmp_path, [OPERATOR[0]], number=2))
    assert alice.get("/devices").status_code == 403
    plant(tmp_path, planted())
    refused = alice.get("/devices")
    assert refused.status_code == 403 and refused.json()["detail"].startswith("operator certificate revoked")
    assert bob.get("/devices").status_code == 200  # the held CRL is current: the others keep working
    # the CA lifting the revocation (a later number, its signature) is taken, also as DER
    lifted = x509.load_pem_x509_crl(crl(OPERATOR_CA, [], number=3, valid_for=timedelta(days=1)))
    plant(tmp_path, lifted.public_bytes(serialization.Encoding.DER))
    assert alice.get("/devices").status_code == 200


def test_f13_a_stale_crl_refuses_every_operator_until_a_current_one_is_in_place(tmp_path: Path) -> None:
    where = tmp_path / "operator-ca"
    operators = operator_cas(tmp_path)
    plant(tmp_path, crl(OPERATOR_CA, [], number=2, valid_for=timedelta(seconds=5)))  # a slow machine has 4 s
    alice, bob = fleet(tmp_path, operators)
    assert alice.get("/devices").status_code == 200  # CRL 2 taken (current for a few seconds)
    expires = x509.load_pem_x509_crl((where / "ops.crl.pem").read_bytes()).next_update_utc
    assert expires is not None
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    for operator in (alice, bob):
        refused = operator.get("/devices")
        assert refused.status_code == 403 and refused.json()["detail"].startswith("operator CRL stale")
    # a newer CRL that is itself past nextUpdate is the CA's latest word: taken, and still refuses
    plant(tmp_path, crl(OPERATOR_CA, [], number=3, valid_for=timedelta(seconds=-1)))
    assert bob.get("/devices").json()["detail"].startswith("operator CRL stale")
    plant(tmp_path, crl(OPERATOR_CA, [], number=4, valid_for=timedelta(days=1)))
    assert bob.get("/devices").status_code == 200  # renewed: no restart


def test_f13_a_crl_deleted_under_the_running_server_revokes_nothing_back(tmp_path: Path) -> None:
    alice, bob = fleet(tmp_path, operator_cas(tmp_path, [OPERATOR[0]], number=2))
    (tmp_path / "operator-ca" / "ops.crl.pem").unlink()
    assert alice.get("/devices").status_code == 403
    assert bob.get("/devices").status_code == 200


def with_unknown_version(cert_der: bytes) -> bytes:
    """The certificate with its TBSCertificate.version set to 5 (v3 is 2): cryptography's InvalidVersion."""
    at = cert_der.index(b"\xa0\x03\x02\x01\x02") + 4
    return cert_der[:at] + b"\x05" + cert_der[at + 1 :]


@pytest.mark.parametrize("cert", [with_unknown_version(der(OPERATOR[0])), b"\x30\x03\x02\x01\x01"])
def test_a_client_certificate_cryptography_cannot_parse_is_refused_not_a_server_error(
    tmp_path: Path, cert: bytes
) -> None:
    app = create_app(Settings(db_path=tmp_path / "devices.db"), operator_cas=operator_cas(tmp_path))
    response = as_client(app, cert).get("/devices")
    assert response.status_code == 403
    assert "cannot be parsed" in response.json()["detail"]


MAKER = ca("test manufacturer CA")


@pytest.mark.parametrize(
    "ek_der",
    [
        with_unknown_version(der(ek_certificate(MAKER)[0])),
        der(ek_certificate(ca("test manufacturer CA"))[0]),  # the maker's name, another key
    ],
    ids=["unknown-version", "another-key"],
)
def test_a_manifest_whose_ek_certificate_does_not_load_or_verify_is_malformed_not_a_server_error(
    tmp_path: Path, ek_der: bytes
) -> None:
    pem = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(ek_der).decode() + "-----END CERTIFICATE-----\n"
    record = {"device_id": "sid-1", "model": "m", "ek_certificate_pem": pem, "registration_code": {}}
    manifest = json.dumps({"type": MANIFEST_TYPE, "devices": [record]}).encode()
    fleet_ca = ca("test fleet CA")
    trust = Trust(
        manufacturer_cas=[MAKER[0]],
        golden=[],
        fleet_ca_cert=fleet_ca[0],
        fleet_ca_key=fleet_ca[1],
        policy_authority=rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
    )
    prepare(tmp_path / "fleet.db")
    signature = MAKER[1].sign(manifest, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(ManifestError, match="malformed"):
        load_manifest(EnrolmentStore(tmp_path / "fleet.db"), trust, manifest, signature)
