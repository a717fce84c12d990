"""The device's own endpoints (update check, telemetry): only a fleet-CA certificate reaches them."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from fastapi.testclient import TestClient
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.telemetry_store import KEEP

from tests.support.identities import OPERATOR, ca, leaf, operator_cas, with_client_certificate

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509

FLEET_CA = ca("test fleet CA")
DEVICE = leaf(FLEET_CA, "sid-0000000007")
TELEMETRY = {"uptime_s": 42, "firmware_version": "1.4.2"}


def app_as(tmp_path: Path, cert: x509.Certificate | None, minimum: int = 3) -> Any:
    app = create_app(
        Settings(db_path=tmp_path / "devices.db", min_security_version=minimum), operator_cas=operator_cas(tmp_path)
    )
    app.state.fleet_ca = FLEET_CA[0]  # what SECURE_IOT_TRUST_DIR/fleet-ca.pem gives in production
    return with_client_certificate(app, cert)


def test_a_device_checks_for_updates_and_sends_telemetry(tmp_path: Path) -> None:
    with TestClient(app_as(tmp_path, DEVICE[0])) as device:
        old = device.get("/updates/check", params={"security_version": 2})
        assert old.status_code == 200
        assert old.json() == {"device": "sid-0000000007", "minimum_security_version": 3, "update_required": True}
        assert device.get("/updates/check", params={"security_version": 3}).json()["update_required"] is False
        sent = device.post("/telemetry", json=TELEMETRY)
        assert sent.status_code == 202
        assert sent.json()["device"] == "sid-0000000007"
        assert {k: sent.json()["stored"][k] for k in TELEMETRY} == TELEMETRY
        assert device.post("/telemetry", json={**TELEMETRY, "shell": "rm -rf /"}).status_code == 422


def test_telemetry_is_stored_bounded_per_device_and_read_by_operators(tmp_path: Path) -> None:
    other = leaf(FLEET_CA, "sid-0000000008")
    with TestClient(app_as(tmp_path, DEVICE[0])) as device:
        for uptime in range(KEEP + 5):
            assert device.post("/telemetry", json={**TELEMETRY, "uptime_s": uptime}).status_code == 202
    with TestClient(app_as(tmp_path, other[0])) as neighbour:
        neighbour.post("/telemetry", json=TELEMETRY)
    with TestClient(app_as(tmp_path, OPERATOR[0])) as operator:
        newest = operator.get("/devices/sid-0000000007/telemetry", params={"limit": KEEP}).json()
        assert [r["uptime_s"] for r in newest] == list(range(KEEP + 4, 4, -1))  # the newest KEEP, newest first
        assert len(operator.get("/devices/sid-0000000008/telemetry").json()) == 1  # its own, not the other's
        assert operator.get("/devices/sid-0000000007/telemetry", params={"limit": KEEP + 1}).status_code == 422
    with TestClient(app_as(tmp_path, DEVICE[0])) as device:
        assert device.get("/devices/sid-0000000007/telemetry").status_code == 403  # operators only


def test_device_endpoints_refuse_anonymous_operator_and_unknown_callers(tmp_path: Path) -> None:
    stranger = leaf(ca("unknown CA"), "mallory")[0]
    for cert, code in ((None, 401), (OPERATOR[0], 403), (stranger, 403)):
        with TestClient(app_as(tmp_path, cert)) as caller:
            assert caller.get("/updates/check").status_code == code
            assert caller.post("/telemetry", json=TELEMETRY).status_code == code


def test_a_revoked_device_certificate_reaches_nothing(tmp_path: Path) -> None:
    """Quarantine revokes the certificate: the device's own endpoints refuse it from then on."""
    with TestClient(app_as(tmp_path, DEVICE[0])) as device:
        assert device.get("/updates/check").status_code == 200
        with sqlite3.connect(tmp_path / "devices.db") as db:  # what EnrolmentStore.quarantine writes
            db.execute(
                "INSERT INTO revocations VALUES (?, ?, ?, ?)",
                (format(DEVICE[0].serial_number, "x"), "sid-0000000007", "reference-values: drift", "now"),
            )
        answer = device.get("/updates/check")
        assert answer.status_code == 403 and "reference-values: drift" in answer.json()["detail"]
        assert device.post("/telemetry", json=TELEMETRY).status_code == 403


def test_telemetry_fields_are_bounded_before_storage(tmp_path: Path) -> None:
    """A malicious device's out-of-range report is a 422, not a database error: an uptime past the
    32-bit column (an overflow on either backend) and a version string of any length are refused."""
    with TestClient(app_as(tmp_path, DEVICE[0]), raise_server_exceptions=False) as device:
        for report in ({"uptime_s": 2**63}, {"uptime_s": 2**31}, {"firmware_version": "1.0.0-" + "a" * 5000}):
            assert device.post("/telemetry", json={**TELEMETRY, **report}).status_code == 422
        assert device.post("/telemetry", json={**TELEMETRY, "uptime_s": 2**31 - 1}).status_code == 202
