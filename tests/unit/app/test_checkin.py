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


def test_a_nonce_answers_once(app: tuple[TestClient, EnrolmentStore]) -> None:
    client, _ = app
    issued = client.get("/attestation/nonce").json()
    assert len(bytes.fromhex(issued["nonce"])) == 32
    stranger = pem(leaf(ca("another CA"), "sid-0000000001")[0])
    first = client.post("/attestation/checkin", json=body(issued["session"], stranger))
    assert first.status_code == 403 and first.json()["step"] == "device-certificate"
    again = client.post("/attestation/checkin", json=body(issued["session"], stranger))
    assert again.status_code == 403 and again.json()["step"] == "nonce"


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


def test_expired_checkin_nonces_are_dropped(app: tuple[TestClient, EnrolmentStore]) -> None:
    client, store = app
    store.open_challenge(
        {
            "session": "old",
            "device_id": "checkin",
            "ak_public": b"",
            "secret_sha256": b"",
            "nonce": b"n" * 32,
            "expires_at": time.time() - 1,
        }
    )
    client.get("/attestation/nonce")
    assert store.take_challenge("old") is None
