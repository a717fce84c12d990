"""Check-in before the quote: refusals that must change nothing (no TPM needed to reach them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from secure_iot_server.api import create_app
from secure_iot_server.attestation import Refused
from secure_iot_server.checkin_nonce import CheckinNonces
from secure_iot_server.config import Settings
from secure_iot_server.enrolment_store import EnrolmentStore
from secure_iot_server.registration import Trust

from tests.support.identities import ca, leaf

FLEET = ca("fleet CA")
AUTHORITY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, EnrolmentStore]]:
    trust = Trust(
        manufacturer_cas=[], golden=[], fleet_ca_cert=FLEET[0], fleet_ca_key=FLEET[1], policy_authority=AUTHORITY
    )
    db = tmp_path / "fleet.db"
    yield TestClient(create_app(Settings(db_path=db), trust=trust, operator_cas=[])), EnrolmentStore(db)


def body(session: str, certificate_pem: str) -> dict[str, Any]:
    return {
        "session": session,
        "certificate_pem": certificate_pem,
        "quote": "",
        "signature": "",
        "event_log": [],
        "key_approval": "",
        "key_signature": "",
    }


def pem(cert: Any) -> str:
    return str(cert.public_bytes(serialization.Encoding.PEM).decode())


def test_a_refused_stranger_consumes_nothing(app: tuple[TestClient, EnrolmentStore]) -> None:
    """A nonce is consumed only by a check-in the device's AK quoted (tests/e2e/test_reattestation.py
    replays one): a stranger refused before that changes nothing, and is refused the same way again."""
    client, _ = app
    issued = client.get("/attestation/nonce").json()
    assert len(bytes.fromhex(issued["nonce"])) == 32
    stranger = pem(leaf(ca("another CA"), "sid-0000000001")[0])
    for _ in range(2):
        refused = client.post("/attestation/checkin", json=body(issued["session"], stranger))
        assert refused.status_code == 403 and refused.json()["step"] == "device-certificate"


def test_a_session_the_server_did_not_issue_is_refused(app: tuple[TestClient, EnrolmentStore]) -> None:
    client, _ = app
    issued = client.get("/attestation/nonce").json()
    forged = "1" + issued["session"][1:]  # another issue time: another nonce, which no TPM quoted
    own = pem(leaf(FLEET, "sid-0000000001")[0])
    for session in ("reg", "zz.abc", f"{int(time.time() * 1000):x}.short", forged):
        response = client.post("/attestation/checkin", json=body(session, own))
        assert response.status_code == 403 and response.json()["step"] in {"nonce", "device-certificate"}
    assert CheckinNonces(b"k" * 32).redeem(issued["session"], time.time()) != CheckinNonces(b"j" * 32).redeem(
        issued["session"], time.time()
    )  # the nonce is the key's: a server with another fleet CA names another


def test_a_fleet_certificate_of_no_enrolled_device_is_refused(app: tuple[TestClient, EnrolmentStore]) -> None:
    client, store = app
    issued = client.get("/attestation/nonce").json()
    response = client.post("/attestation/checkin", json=body(issued["session"], pem(leaf(FLEET, "sid-0000000001")[0])))
    assert response.status_code == 403
    assert "not the certificate issued to an enrolled device" in response.json()["detail"]
    assert store.revocations() == []


def test_a_registration_session_is_not_a_checkin_nonce(app: tuple[TestClient, EnrolmentStore]) -> None:
    client, store = app
    store.open_challenge(
        {
            "session": "reg",
            "device_id": "sid-0000000001",
            "ak_public": b"x",
            "secret_sha256": b"y",
            "nonce": b"n" * 32,
            "expires_at": time.time() + 60,
        }
    )
    response = client.post("/attestation/checkin", json=body("reg", pem(leaf(FLEET, "sid-0000000001")[0])))
    assert response.status_code == 403 and response.json()["step"] == "nonce"


def test_an_expired_or_future_nonce_is_refused_before_anything_else() -> None:
    nonces = CheckinNonces(b"k" * 32)
    issued = nonces.issue(1_000.0)
    assert nonces.redeem(issued["session"], 1_059.0).nonce == bytes.fromhex(issued["nonce"])
    with pytest.raises(Refused, match="expired"):
        nonces.redeem(issued["session"], 1_061.0)
    with pytest.raises(Refused, match="expired"):
        nonces.redeem(issued["session"], 990.0)  # issued in the future (beyond the clock skew)
    with pytest.raises(Refused, match="not a check-in session"):
        nonces.redeem("3e8.not-16-bytes", 1_000.0)
