"""A stolen operator certificate, over real mTLS against the fleet server process (F11, F12, F14).

The server's home is the project's own (tasks/device/fleet_server.py: an operator CA with its first CRL,
one operator); the revocation is the project's ``revoke_operator``; the client is the operator's
httpx over TLS with its certificate. No restart between the revocation and the refusal.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404 - the test starts the real server process and checks how it refuses
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from secure_iot_server.device_store import DeviceStore

from tasks.core import atomic
from tasks.core.evidence import StageRecord
from tasks.core.processes import free_port
from tasks.device import fleet_server, manufacturer
from tasks.device.server_settings import ServerSettings
from tests.support.identities import crl
from tests.support.project import REPO

pytestmark = pytest.mark.slow
APP_SRC = REPO / "app" / "src"
DEVICE = {
    "id": "sensor-001",
    "model": "TH-100",
    "firmware_version": "1.4.2",
    "public_key_pem": ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode(),
}


def pem_public(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def server(tmp_path: Path) -> fleet_server.FleetServer:
    authority = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pipeline = ec.generate_private_key(ec.SECP256R1()).public_key()
    maker = manufacturer.create("ACME")
    return fleet_server.prepare(tmp_path / "fleet", maker.cert_pem, pem_public(pipeline), pem_public(authority), [])


def test_f11_a_revoked_operator_is_refused_at_the_next_request_without_a_restart(
    server: fleet_server.FleetServer,
) -> None:
    rec = StageRecord(stage="operator-revocation", root=REPO)
    first = server.operator_crl.read_bytes()
    stolen = x509.load_pem_x509_certificate((server.home / "operator.pem").read_bytes())
    with (
        fleet_server.serving(rec, server, APP_SRC, min_security_version=0) as url,
        fleet_server.client(server, url, operator=True) as operator,
    ):
        assert operator.post("/devices", json=DEVICE).status_code == 201

        assert fleet_server.revoke_operator(server, stolen) == 2
        refused = operator.delete("/devices/sensor-001")
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"].startswith("operator certificate revoked")

        # F12: the first CRL put back (a replay that would un-revoke the certificate) is refused
        atomic.write_bytes(server.operator_crl, first)
        assert operator.get("/devices").status_code == 403
    assert DeviceStore(server.home / "fleet.db").get("sensor-001") is not None  # the refused delete did nothing
    assert "older than the one held" in (server.home / "server.log").read_text()


def missing(server: fleet_server.FleetServer) -> None:
    server.operator_crl.unlink()


def foreign(server: fleet_server.FleetServer) -> None:
    """A CRL under the operator CA's name, signed by another key."""
    impostor = manufacturer.create(manufacturer.load_ca(server.operator_ca, server.operator_ca_key).name)
    assert impostor.cert.subject == x509.load_pem_x509_certificate(server.operator_ca.read_bytes()).subject
    atomic.write_bytes(server.operator_crl, crl((impostor.cert, impostor.key), [], number=9))


def expired(server: fleet_server.FleetServer) -> None:
    """The operator CA's own CRL, a later number, past its nextUpdate."""
    operators = manufacturer.load_ca(server.operator_ca, server.operator_ca_key)
    stale = crl((operators.cert, operators.key), [], number=2, valid_for=timedelta(seconds=-1))
    atomic.write_bytes(server.operator_crl, stale)


@pytest.mark.parametrize(
    ("change", "reason"),
    [(missing, "the operator CA's CRL is required"), (foreign, "not signed by the operator CA"), (expired, "expired")],
    ids=["missing", "foreign", "expired"],
)
def test_f14_the_server_does_not_start_without_a_current_crl_of_its_operator_ca(
    server: fleet_server.FleetServer, change: Callable[[fleet_server.FleetServer], None], reason: str
) -> None:
    change(server)
    settings = ServerSettings(
        host="127.0.0.1",
        port=free_port(),
        db_path=server.home / "fleet.db",
        trust_dir=server.trust,
        tls_cert=server.home / "server.pem",
        tls_key=server.home / "server.key",
        client_ca=server.home / "client-ca.pem",
    )
    env = {**os.environ, **settings.env(APP_SRC)}
    done = subprocess.run(  # nosec B603 - our own interpreter and module
        [sys.executable, "-m", "secure_iot_server"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("secure-iot-server: operator-ca/operators.crl.pem: ")
    assert reason in lines[0]
