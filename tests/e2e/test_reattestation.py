"""Issue #14: the TPM-bound device key and re-attestation on check-in, with real swtpm TPMs, tpm2-tools
and the real app.

11 tampered boot -> the device key is unusable (the genuine build's approval does not match the PCRs:
   the TPM refuses PolicyAuthorize)
12 re-attestation drift (tampered firmware, downgrade, missing key) -> quarantined with the reason the
   operator sees, the certificate revoked and refused from then on
#29 a device is judged only against its enrolled model's builds: another board's signed firmware
   (with that build's own valid approval) does not register it
#29 a signed update keeps the device attested with the same key and certificate; once the new build is
   marked good (the TPM counter raised), booting the old one is refused by the TPM and by the server
   (step "rollback", not a quarantine), and the new build checks in again
A stranger's check-in (no valid quote of the enrolled AK) changes nothing.
#30 a check-in nonce is stateless until a check-in the device's AK quoted consumes it: replaying that
   check-in, word for word, is refused.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.core.errors import ToolError
from tests.support.fleet import GENUINE, MIN_SECURITY_VERSION, Fleet, events_of, make_fleet, variant

pytestmark = pytest.mark.slow
GENUINE_BOOT = events_of(GENUINE)
TAMPERED_BOOT = events_of(variant(b"a FIT with one flipped byte", "1.1.0", 2))
OLD_BOOT = events_of(variant(b"firmware 1.0.0, superseded", "1.0.0", MIN_SECURITY_VERSION - 1))
UPDATE = variant(b"firmware 1.2.0, the next signed release", "1.2.0", 3)
UPDATED_BOOT = events_of(UPDATE)
OTHER_MODEL = variant(b"firmware 1.2.0 for another board", "1.2.0", 3, model="other-board")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield make_fleet(tmp_path_factory.mktemp("fleet"), devices=6, golden=(UPDATE, OTHER_MODEL))


TLS_CERTIFICATES: dict[str, str] = {}  # device id -> the TLS identity the fleet CA issued at registration


def registered(fleet: Fleet, n: int) -> tuple[str, str]:
    device = fleet.devices[n]
    response = fleet.register(device, boot=GENUINE_BOOT)
    assert response.status_code == 201, response.text
    TLS_CERTIFICATES[device.device_id] = response.json()["tls_certificate_pem"]
    return device.device_id, response.json()["certificate_pem"]


def refused(response: Any, step: str, words: str) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["step"] == step, body
    assert words in body["detail"], body
    return body


def test_the_certificate_is_for_the_tpm_key_the_ak_certified(fleet: Fleet) -> None:
    device_id, pem = registered(fleet, 0)
    cert = x509.load_pem_x509_certificate(pem.encode())
    from secure_iot_server import tpm

    key = tpm.parse_ecc_public((fleet.work / "agent" / device_id / "key.pub").read_bytes())
    assert cert.public_key() == key.key
    assert key.policy_bound
    # the TLS identity: the key the device made, vouched for by the TPM key, certified for the same device
    tls = x509.load_pem_x509_certificate(TLS_CERTIFICATES[device_id].encode())
    tls_key = serialization.load_pem_private_key((fleet.work / "agent" / device_id / "tls.key").read_bytes(), None)
    assert tls.public_key() == tls_key.public_key() and tls.subject == cert.subject
    with fleet.power_on(fleet.devices[0], GENUINE_BOOT) as agent:
        response = fleet.checkin(agent, pem, GENUINE_BOOT)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "attested"
    assert fleet.states()[device_id] == ("attested", "")


def test_11_tampered_boot_key_unusable_12_drift_quarantined_and_cert_refused(fleet: Fleet) -> None:
    device_id, pem = fleet.devices[0].device_id, fleet.attested_certificate(fleet.devices[0].device_id)
    with fleet.power_on(fleet.devices[0], TAMPERED_BOOT) as agent:
        agent.load_ak()
        use = fleet.key_use(GENUINE_BOOT)  # the genuine build's approval: all a tampered device can present
        with pytest.raises(ToolError, match="policyauthorize"):
            agent.sign_with_device_key(b"any challenge", use.approval, use.authority)
        body = refused(
            fleet.checkin(agent, pem, TAMPERED_BOOT, fresh_power_on=False), "reference-values", "quarantined"
        )
    assert "match no signed firmware build" in body["detail"]
    state, reason = fleet.states()[device_id]
    assert state == "quarantined"
    assert reason.startswith("reference-values: measurements")
    serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")
    tls = format(x509.load_pem_x509_certificate(TLS_CERTIFICATES[device_id].encode()).serial_number, "x")
    revoked = {r["certificate_serial"] for r in fleet.operator.get("/attestation/revocations").json()}
    assert revoked == {serial, tls}  # the registration certificate and the TLS identity, together
    # booted genuinely again, the device still cannot come back with that certificate
    with fleet.power_on(fleet.devices[0], GENUINE_BOOT) as agent:
        refused(fleet.checkin(agent, pem, GENUINE_BOOT), "device-certificate", "revoked")


def test_29_an_operator_releases_a_reflashed_device_which_registers_afresh(fleet: Fleet) -> None:
    """After test_11: device 0 is quarantined. Only an operator releases it; it then registers again
    (new key, new certificate), the old certificate stays revoked, and the release is audited."""
    device = fleet.devices[0]
    old_pem = fleet.attested_certificate(device.device_id)
    path = f"/attestation/devices/{device.device_id}/release"
    assert fleet.client.post(path, json={"note": "re-flashed"}).status_code == 401  # a device cannot
    released = fleet.operator.post(path, json={"note": "re-flashed from the factory image, inspected"})
    assert released.status_code == 200, released.text
    assert released.json()["quarantine_reason"].startswith("reference-values:")
    assert fleet.operator.post(path, json={"note": "again"}).status_code == 409  # no longer quarantined
    again = fleet.register(device, boot=GENUINE_BOOT)
    assert again.status_code == 201, again.text
    new_pem = again.json()["certificate_pem"]
    assert new_pem != old_pem
    with fleet.power_on(device, GENUINE_BOOT) as agent:
        assert fleet.checkin(agent, new_pem, GENUINE_BOOT).status_code == 200
        refused(fleet.checkin(agent, old_pem, GENUINE_BOOT), "device-certificate", "revoked")
    audit = fleet.operator.get("/attestation/releases").json()
    assert [(a["device_id"], a["note"]) for a in audit] == [
        (device.device_id, "re-flashed from the factory image, inspected")
    ]
    assert audit[0]["released_by"].startswith("CN=")
    assert audit[0]["security_version"] == GENUINE["security_version"]  # the floor survives the release


def test_12_downgrade_below_the_minimum_is_quarantined(fleet: Fleet) -> None:
    device_id, pem = registered(fleet, 1)
    with fleet.power_on(fleet.devices[1], OLD_BOOT) as agent:
        refused(fleet.checkin(agent, pem, OLD_BOOT), "security-version", "quarantined")
    assert fleet.states()[device_id][0] == "quarantined"


def test_12_missing_key_is_quarantined_but_a_strangers_checkin_changes_nothing(fleet: Fleet) -> None:
    device_id, pem = registered(fleet, 2)
    with fleet.power_on(fleet.devices[2], GENUINE_BOOT) as agent:
        agent.load_ak()
        # a stranger: the right certificate, but a quote with another session's nonce
        issued = fleet.client.get("/attestation/nonce").json()
        attest, signature = agent.quote(b"\x00" * 32)
        body = {
            "session": issued["session"],
            "certificate_pem": pem,
            "quote": base64.b64encode(attest).decode(),
            "signature": base64.b64encode(signature).decode(),
            "event_log": [{"pcr": p, "digest": d} for p, d in GENUINE_BOOT],
            "key_approval": fleet.key_use(GENUINE_BOOT).approval.policy.hex(),
            "key_signature": "",
        }
        refused(fleet.client.post("/attestation/checkin", json=body), "nonce", "another nonce")
        assert fleet.states()[device_id] == ("attested", "")
        (agent.work / "key.priv").unlink()  # the device key is gone
        refused(fleet.checkin(agent, pem, GENUINE_BOOT, fresh_power_on=False), "device-key", "quarantined")
    assert fleet.states()[device_id] == (
        "quarantined",
        "device-key: no signature by the device key (the key is missing or unusable)",
    )


def test_29_an_update_keeps_the_key_and_certificate_and_a_rollback_is_refused(fleet: Fleet) -> None:
    device = fleet.devices[3]
    device_id, pem = registered(fleet, 3)
    with fleet.power_on(device, UPDATED_BOOT) as agent:  # N+1 installed and booted (pending)
        updated = fleet.checkin(agent, pem, UPDATED_BOOT)
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"device_id": device_id, "state": "attested", "firmware": "1.2.0"}
    with fleet.power_on(device, UPDATED_BOOT) as agent:  # N+1 marked good: the counter follows it
        assert agent.raise_rollback_counter(UPDATE["security_version"]) == 3
    with fleet.power_on(device, GENUINE_BOOT) as agent:  # N again: a genuine, signed, older build
        use = fleet.key_use(GENUINE_BOOT)
        with pytest.raises(ToolError, match="policynv"):
            agent.sign_with_device_key(b"any challenge", use.approval, use.authority)
        body = refused(fleet.checkin(agent, pem, GENUINE_BOOT, fresh_power_on=False), "rollback", "is below")
    assert "security version 3" in body["detail"] and "rollback counter" in body["detail"]
    state, reason = fleet.states()[device_id]
    assert (state, reason.split(":")[0]) == ("rolled-back", "rollback")  # seen, not quarantined: N+1 recovers it
    assert device_id not in {r["device_id"] for r in fleet.operator.get("/attestation/revocations").json()}
    with fleet.power_on(device, UPDATED_BOOT) as agent:
        again = fleet.checkin(agent, pem, UPDATED_BOOT)
    assert again.status_code == 200, again.text
    assert fleet.states()[device_id] == ("attested", "")


def test_29_another_models_signed_build_does_not_register_a_device(fleet: Fleet) -> None:
    device = fleet.devices[4]
    response = fleet.register(device, boot=events_of(OTHER_MODEL))  # its own approval: the TPM signs
    body = refused(response, "reference-values", "for model other-board")
    assert "enrolled as model" in body["detail"]
    assert device.device_id not in fleet.attested()


def test_29_a_released_device_cannot_come_back_on_an_older_build(fleet: Fleet) -> None:
    """After the update test: device 3 attested on N+1 (security version 3). Quarantined, released,
    it must register again on N+1 or later: the floor survives the release."""
    device = fleet.devices[3]
    pem = fleet.attested_certificate(device.device_id)
    with fleet.power_on(device, TAMPERED_BOOT) as agent:
        refused(fleet.checkin(agent, pem, TAMPERED_BOOT), "reference-values", "quarantined")
    path = f"/attestation/devices/{device.device_id}/release"
    assert fleet.operator.post(path, json={"note": "re-flashed"}).status_code == 200
    refused(fleet.register(device, boot=GENUINE_BOOT), "rollback", "below security version 3")
    again = fleet.register(device, boot=UPDATED_BOOT)
    assert again.status_code == 201, again.text


def test_30_a_replayed_checkin_is_refused(fleet: Fleet) -> None:
    device_id, pem = registered(fleet, 5)
    with fleet.power_on(fleet.devices[5], GENUINE_BOOT) as agent:
        agent.load_ak()
        issued = fleet.client.get("/attestation/nonce").json()
        nonce = bytes.fromhex(issued["nonce"])
        attest, signature = agent.quote(nonce)
        use = fleet.key_use(GENUINE_BOOT)
        body = {
            "session": issued["session"],
            "certificate_pem": pem,
            "quote": base64.b64encode(attest).decode(),
            "signature": base64.b64encode(signature).decode(),
            "event_log": [{"pcr": p, "digest": d} for p, d in GENUINE_BOOT],
            "key_approval": use.approval.policy.hex(),
            "key_signature": base64.b64encode(agent.sign_with_device_key(nonce, use.approval, use.authority)).decode(),
        }
    first = fleet.client.post("/attestation/checkin", json=body)
    assert first.status_code == 200, first.text
    refused(fleet.client.post("/attestation/checkin", json=body), "nonce", "already used")
    assert fleet.states()[device_id] == ("attested", "")
