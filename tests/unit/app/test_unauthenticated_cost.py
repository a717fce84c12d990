"""What an unauthenticated request may cost the fleet server (#30): nothing in storage for a request that
is not even a manufacturer's EK certificate, or for a check-in nonce; index lookups only (no statement
reads a whole table) for a well-formed one; and at most one outstanding challenge per enrolled device,
however many are asked for. Counted with the engine's own statements and SQLite's query plans, not
timed (bench/fleet_server.py has the times against PostgreSQL)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from secure_iot_server import attestation
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.database import engine_for
from secure_iot_server.enrolment_store import EnrolmentStore
from secure_iot_server.registration import Trust
from secure_iot_server.schema import challenges
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from tests.support.identities import ca, ek_certificate, leaf
from tests.support.statements import full_scans, recorded

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine

FLEET_SIZE = 300  # enrolments besides the device under test: enough that a scan would show in the plan
MANUFACTURER = ca("test manufacturer CA")
FLEET = ca("test fleet CA")
AK_PUBLIC = bytes.fromhex(
    json.loads((Path(__file__).parents[2] / "fixtures" / "tpm" / "quote.json").read_text())["ak_tpm2b_public"]
)


def enrolment(device_id: str, ek_spki_sha256: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "model": "TH-100",
        "ek_spki_sha256": ek_spki_sha256,
        "code_salt": b"salt",
        "code_hash": bytes(32),
        "code_n": 2**14,
        "code_r": 8,
        "code_p": 1,
        "manifest_sha256": "ab" * 32,
    }


ENROLLED_EK, ENROLLED_PEM = ek_certificate(MANUFACTURER)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[TestClient, Engine]]:
    """The app on a SQLite file holding FLEET_SIZE enrolments and the one of ENROLLED_EK."""
    trust = Trust(
        manufacturer_cas=[MANUFACTURER[0]],
        golden=[],
        fleet_ca_cert=FLEET[0],
        fleet_ca_key=FLEET[1],
        policy_authority=rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
    )
    db = tmp_path / "fleet.db"
    app = create_app(Settings(db_path=db), trust=trust, operator_cas=[])
    store = EnrolmentStore(db)
    store.enrol([enrolment(f"dev-{n:05d}", f"{n:064x}") for n in range(FLEET_SIZE)])
    store.enrol([enrolment("dev-enrolled", attestation.spki_sha256(ENROLLED_EK.public_key()))])
    with TestClient(app) as client:
        yield client, engine_for(db)


def bare_answer(session: str, ek_pem: str, code: str, activated_secret: str) -> dict[str, Any]:
    """A registration answer with the code and the activated credential, and nothing a TPM would have made."""
    return {
        "session": session,
        "ek_certificate_pem": ek_pem,
        "registration_code": code,
        "activated_secret": activated_secret,
        "quote": "",
        "signature": "",
        "event_log": [],
        "key_public": "",
        "key_certify": "",
        "key_certify_signature": "",
        "key_approval": "",
        "key_signature": "",
    }


def challenge(ek_pem: str) -> dict[str, str]:
    return {"ek_certificate_pem": ek_pem, "ak_public": base64.b64encode(AK_PUBLIC).decode()}


GARBAGE = [
    challenge("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n"),
    challenge(ek_certificate(ca("a stranger's CA"))[1]),  # well formed, but no manufacturer's
    {"ek_certificate_pem": ENROLLED_PEM, "ak_public": "not base64!"},
]


@pytest.mark.parametrize("body", GARBAGE, ids=["not-pem", "unknown-ca", "bad-ak"])
def test_a_garbage_challenge_touches_no_storage(server: tuple[TestClient, Engine], body: dict[str, str]) -> None:
    client, engine = server
    with recorded(engine) as statements:
        response = client.post("/attestation/challenge", json=body)
    assert response.status_code == 403
    assert statements == []


def test_a_checkin_nonce_touches_no_storage(server: tuple[TestClient, Engine]) -> None:
    client, engine = server
    with recorded(engine) as statements:
        issued = [client.get("/attestation/nonce").json() for _ in range(20)]
    assert statements == []
    assert len({i["session"] for i in issued}) == len({i["nonce"] for i in issued}) == 20


def test_well_formed_unauthenticated_requests_only_search_indexes(server: tuple[TestClient, Engine]) -> None:
    """The EK of an enrolled device, of an unenrolled one, an unknown session, a stranger's check-in:
    every statement they cost finds its rows by an index (SQLite's plan has no SCAN of a table)."""
    client, engine = server
    unenrolled = ek_certificate(MANUFACTURER)[1]
    stranger = leaf(FLEET, "dev-00001")[0].public_bytes(serialization.Encoding.PEM).decode()
    with recorded(engine) as statements:
        assert client.post("/attestation/challenge", json=challenge(ENROLLED_PEM)).status_code == 200
        assert client.post("/attestation/challenge", json=challenge(unenrolled)).status_code == 403
        unknown = bare_answer("x" * 32, ENROLLED_PEM, "AAAA", "")
        assert client.post("/attestation/complete", json=unknown).json()["step"] == "nonce"
        session = client.get("/attestation/nonce").json()["session"]
        checkin = {
            "session": session,
            "certificate_pem": stranger,
            "quote": "",
            "signature": "",
            "event_log": [],
            "key_approval": "",
            "key_signature": "",
        }
        assert client.post("/attestation/checkin", json=checkin).json()["step"] == "device-certificate"
    assert statements, "the requests reached storage"
    assert full_scans(engine, statements) == []


def test_a_flood_of_challenges_keeps_one_per_device(server: tuple[TestClient, Engine]) -> None:
    client, engine = server
    sessions = [
        client.post("/attestation/challenge", json=challenge(ENROLLED_PEM)).json()["session"] for _ in range(25)
    ]
    assert len(set(sessions)) == 25
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(challenges)).scalar() == 1
        assert conn.execute(select(challenges.c.session)).scalar() == sessions[-1]  # the newest replaced the rest


def test_full_scans_sees_a_scan(server: tuple[TestClient, Engine]) -> None:
    """The plan check itself: a statement that reads a whole table is reported (so [] above means something)."""
    _, engine = server
    with recorded(engine) as statements, engine.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM enrolments WHERE model = 'TH-100'").all()
    assert full_scans(engine, statements) == ["SCAN enrolments  <-  SELECT …"]
    with pytest.raises(SQLAlchemyError):
        full_scans(engine, [("SELECT * FROM no_such_table", ())])


def test_the_crl_reads_one_row_however_many_are_revoked(server: tuple[TestClient, Engine]) -> None:
    """GET /attestation/crl, with revocations on the list: one statement, by a key (the list's revision)."""
    client, engine = server
    store = EnrolmentStore(engine.url.database or "")
    assert client.get("/attestation/crl").status_code == 200
    for n in range(FLEET_SIZE):
        store.attest(
            dict(
                device_id=f"dev-{n:05d}",
                certificate_pem="c",
                firmware_version="1",
                security_version=1,
                fit_sha256="f",
                ak_public=b"ak",
                key_public=b"key",
                certificate_serial=f"{n + 1:x}",
                tls_certificate_serial=None,
            )
        )
        store.quarantine(f"dev-{n:05d}", "drift")
    first = x509.load_der_x509_crl(client.get("/attestation/crl").content)
    assert len(list(first)) == FLEET_SIZE  # the quarantines are on the next CRL
    with recorded(engine) as statements:
        assert client.get("/attestation/crl").status_code == 200
    assert len(statements) == 1
    assert full_scans(engine, statements) == []
