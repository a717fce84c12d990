"""Issue #14's attack matrix against real swtpm TPMs, tpm2-tools, cosign-signed reference values and the real app.

Each attack is refused at its named verification step and leaves no enrolment behind; the
genuine device, freshly booted with the signed firmware, registers and gets its certificate.
(Case 10, operator endpoints over mTLS, is not implemented yet: see README.)
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from secure_iot_server.attestation import Lockout

from tasks.core.errors import ToolError
from tasks.device import manufacturer
from tests.support.fleet import GENUINE, MIN_SECURITY_VERSION, Fleet, events_of, make_fleet, variant

pytestmark = pytest.mark.slow
LOCKOUT_S = 6.0  # longer than one registration answer (AK, activation, quote, device key: ~3 s)
GENUINE_BOOT = events_of(GENUINE)
TAMPERED_BOOT = events_of(variant(b"a FIT with one flipped byte", "1.1.0", 2))
OLD_BOOT = events_of(variant(b"firmware 1.0.0, superseded", "1.0.0", MIN_SECURITY_VERSION - 1))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield make_fleet(tmp_path_factory.mktemp("fleet"), lockout=Lockout(max_failures=3, seconds=LOCKOUT_S))


def refused(response: Any, step: str, words: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["step"] == step, body
    assert words in body["detail"], body


def test_1_wrong_registration_code(fleet: Fleet) -> None:
    device = fleet.devices[0]
    refused(fleet.register(device, boot=GENUINE_BOOT, code="AAAA-BBBB-CCCC-DDDD"), "registration-code", "wrong")
    assert fleet.attested() == []


def test_2_code_brute_force_locks_out_even_the_right_code(fleet: Fleet) -> None:
    device = fleet.devices[1]
    for guess in ("AAAA-AAAA-AAAA-AAAA", "BBBB-BBBB-BBBB-BBBB", "CCCC-CCCC-CCCC-CCCC"):
        refused(fleet.register(device, boot=GENUINE_BOOT, code=guess), "registration-code", "wrong")
    refused(fleet.register(device, boot=GENUINE_BOOT), "registration-code", "locked out")
    assert fleet.attested() == []
    time.sleep(LOCKOUT_S)
    assert fleet.register(device, boot=GENUINE_BOOT).status_code == 201
    assert fleet.attested() == [device.device_id]


def test_3_replayed_quote_with_an_old_nonce(fleet: Fleet) -> None:
    device = fleet.devices[0]
    with fleet.power_on(device, GENUINE_BOOT) as agent:
        old = fleet.challenge(agent).json()
        stale = fleet.answer(agent, old, device.code, device.device_id, GENUINE_BOOT)
        new = fleet.challenge(agent, ak_public=(agent.work / "ak.pub").read_bytes()).json()  # same AK
        body = fleet.answer(agent, new, device.code, device.device_id, GENUINE_BOOT)
        new_quote, new_signature = body["quote"], body["signature"]
        body.update(quote=stale["quote"], signature=stale["signature"])  # last session's genuine quote
        refused(fleet.client.post("/attestation/complete", json=body), "nonce", "another nonce")
        body.update(quote=new_quote, signature=new_signature)
    # the session is spent: even its own fresh quote is refused now (a challenge answers once)
    refused(fleet.client.post("/attestation/complete", json=body), "nonce", "already answered")
    assert device.device_id not in fleet.attested()


def test_4_quote_from_another_tpm(fleet: Fleet) -> None:
    victim, other = fleet.devices[0], fleet.devices[2]
    with fleet.power_on(victim, GENUINE_BOOT) as real:
        victim_ek = real.ek_certificate_pem()
    with fleet.power_on(other, GENUINE_BOOT) as agent:
        challenge = fleet.challenge(agent, ek_pem=victim_ek).json()  # the victim's EK, this TPM's AK
        with pytest.raises(ToolError, match="activatecredential"):
            agent.activate_credential(base64.b64decode(challenge["credential"]))
        attest, signature = agent.quote(bytes.fromhex(challenge["nonce"]))
    answer = {
        "session": challenge["session"],
        "ek_certificate_pem": victim_ek,
        "registration_code": victim.code,
        "activated_secret": base64.b64encode(os.urandom(32)).decode(),
        "quote": base64.b64encode(attest).decode(),
        "signature": base64.b64encode(signature).decode(),
        "event_log": [{"pcr": p, "digest": d} for p, d in GENUINE_BOOT],
        "key_public": "",
        "key_certify": "",
        "key_certify_signature": "",
        "key_approval": "",
        "key_signature": "",
    }
    refused(fleet.client.post("/attestation/complete", json=answer), "credential-activation", "not the server")
    assert victim.device_id not in fleet.attested()


def test_5_ek_certificate_from_an_unknown_ca(fleet: Fleet) -> None:
    device = fleet.devices[0]
    rogue = manufacturer.create("Rogue Fab")
    ek_pem = (Path(device.state).parent / "ek.pem").read_bytes()
    forged = manufacturer.ek_certificate(rogue, ek_pem, device.device_id)
    from cryptography.hazmat.primitives import serialization

    with fleet.power_on(device, GENUINE_BOOT) as agent:
        response = fleet.challenge(agent, ek_pem=forged.public_bytes(serialization.Encoding.PEM).decode())
    refused(response, "ek-certificate", "not issued by a known manufacturer CA")


def test_7_unsigned_or_tampered_firmware(fleet: Fleet) -> None:
    device = fleet.devices[0]
    refused(fleet.register(device, boot=TAMPERED_BOOT), "reference-values", "match no signed firmware build")
    assert device.device_id not in fleet.attested()


def test_8_signed_firmware_below_the_minimum_security_version(fleet: Fleet) -> None:
    device = fleet.devices[0]
    refused(fleet.register(device, boot=OLD_BOOT), "security-version", f"< minimum {MIN_SECURITY_VERSION} for model")
    assert device.device_id not in fleet.attested()


def test_9_event_log_edited_to_the_golden_values(fleet: Fleet) -> None:
    device = fleet.devices[0]
    response = fleet.register(device, boot=TAMPERED_BOOT, log=GENUINE_BOOT)
    refused(response, "pcr-digest", "not the replay of the event log")
    assert device.device_id not in fleet.attested()


def test_9b_a_tls_key_the_device_key_did_not_vouch_for(fleet: Fleet) -> None:
    """A TLS key swapped in on the wire (the signature is over the device's own key, not this one)."""
    device = fleet.devices[0]
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def swap(body: dict[str, Any]) -> None:
        body["tls_public_key"] = pem.decode()

    refused(fleet.register(device, boot=GENUINE_BOOT, edit=swap), "tls-key", "did not vouch for this TLS key")
    assert device.device_id not in fleet.attested()


def test_genuine_device_registers_then_6_cannot_be_claimed_again(fleet: Fleet) -> None:
    device = fleet.devices[0]
    response = fleet.register(device, boot=GENUINE_BOOT)
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json()["certificate_pem"].encode())
    ca = x509.load_pem_x509_certificate((fleet.trust_dir / "fleet-ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == f"CN={device.device_id}"
    assert response.json()["firmware"] == GENUINE["firmware_version"]
    assert device.device_id in fleet.attested()
    refused(fleet.register(device, boot=GENUINE_BOOT), "ek-certificate", "already claimed")
    assert hashlib.sha256(fleet.batch.manifest.read_bytes()).hexdigest()  # the manifest is still what was signed
