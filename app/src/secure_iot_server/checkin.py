"""Periodic re-attestation: an enrolled device checks in with a fresh quote, and drift quarantines it.

device -> GET /attestation/nonce                       -> {session, nonce}  (stateless: checkin_nonce.py)
device -> POST /attestation/checkin {session, certificate_pem, quote, signature, event_log, key_approval,
                                     key_signature}

Who is asking is settled first, and a failure there changes nothing (a stranger cannot quarantine
a device): the certificate is the fleet CA's, current, not revoked, and the one issued at
registration; the quote is signed by the AK enrolled with it and carries this session's nonce.
From then on the report provably comes from that device's TPM, and any drift quarantines it:
the event log does not replay to the quoted PCRs, the measurements are no signed build's for the
device's enrolled model, the build is below that model's minimum, the key approval the device used
is not its booted build's, or the TPM-bound device key did not sign the nonce (missing, or unusable
because the PCRs are not the genuine boot's). A genuine but older signed build than the device last
attested on is a rollback: refused with that reason, not quarantined (the TPM's counter already
refuses its key; booting the newer build again recovers it). Quarantine = state `quarantined` with
the reason, and the certificate revoked (refused from then on and listed on the fleet CA's CRL,
crl.py). Nothing else changes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cryptography import x509

from . import attestation, tpm
from .attestation import Refused
from .enrolment_store import QUARANTINED, EnrolmentStore
from .identity import issued_by, load_certificate
from .registration import Trust, b64

if TYPE_CHECKING:
    from .checkin_nonce import CheckinNonces


class Quarantined(Refused):
    """The report was the device's own and showed drift: it is quarantined now."""


def device_of(
    store: EnrolmentStore, trust: Trust, certificate_pem: str
) -> tuple[str, dict[str, Any], x509.Certificate]:
    """The fleet CA's certificate of an enrolled, not revoked device, exactly the one issued at registration."""
    step = "device-certificate"
    try:
        cert = load_certificate(certificate_pem.encode())
    except ValueError:
        raise Refused(step, "not a PEM X.509 certificate") from None
    if not issued_by(cert, trust.fleet_ca_cert):
        raise Refused(step, "not issued by the fleet CA")
    if not cert.not_valid_before_utc <= attestation.now_utc() <= cert.not_valid_after_utc:
        raise Refused(step, "outside its validity period")
    serial = format(cert.serial_number, "x")
    revoked = store.revocation(serial)
    if revoked is not None:
        raise Refused(step, f"revoked at {revoked['revoked_at']}: {revoked['reason']}")
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    device_id = str(names[0].value) if names else ""
    enrolled = store.device_key(device_id)
    if enrolled is None or enrolled["certificate_serial"] != serial:
        raise Refused(step, "not the certificate issued to an enrolled device")
    return device_id, enrolled, cert


def _quarantine(store: EnrolmentStore, device_id: str, cert: x509.Certificate, drift: Refused) -> Quarantined:
    store.quarantine(device_id, f"{drift.step}: {drift.reason}")
    return Quarantined(
        drift.step, f"device {device_id} quarantined, certificate {cert.serial_number:x} revoked: {drift.reason}"
    )


def checkin(store: EnrolmentStore, trust: Trust, nonces: CheckinNonces, answer: dict[str, Any]) -> dict[str, Any]:
    pending = nonces.redeem(str(answer["session"]), time.time())  # stateless: issued by us, not expired
    device_id, enrolled, cert = device_of(store, trust, str(answer["certificate_pem"]))
    if enrolled["state"] == QUARANTINED:
        raise Refused("device-certificate", f"quarantined: {enrolled['reason']}")
    ak = tpm.parse_public(enrolled["ak_public"])
    quote = attestation.verify_quote_signature(
        ak, b64(answer["quote"], "quote", "quote-signature"), b64(answer["signature"], "signature", "quote-signature")
    )
    attestation.verify_nonce(quote, pending.nonce, pending.expires_at, time.time())
    # Authenticated now (the device's AK quoted this nonce): the one write that makes the nonce single-use
    # is bounded by the enrolled devices' own check-ins, not by who asks for nonces.
    if not store.consume_nonce(pending.session, device_id, pending.expires_at, time.time()):
        raise Refused("nonce", "this check-in nonce was already used (a nonce is single-use)")
    # The report is the device's own from here: drift quarantines (a rollback to a build the fleet
    # still accepts is refused with its reason instead).
    model = store.model_of(device_id) or ""
    if not any(build.hardware_model == model for build in trust.golden):
        raise Refused(
            "reference-values", f"the server has no signed build for model {model!r}: configuration, not drift"
        )
    try:
        event_log = [(int(e["pcr"]), str(e["digest"]).lower()) for e in answer["event_log"]]
        attestation.verify_pcr_digest(quote, event_log)
        build = attestation.verify_reference_values(event_log, trust.golden, model)
        attestation.verify_security_version(build, trust.minimum_for(model))
    except Refused as drift:
        raise _quarantine(store, device_id, cert, drift) from None
    try:
        attestation.verify_no_rollback(build, store.security_floor(device_id))
    except Refused as rollback:
        store.rolled_back(device_id, f"{rollback.step}: {rollback.reason}")  # the operator sees it; no revocation
        raise
    try:
        attestation.verify_approval_used(build, str(answer["key_approval"]))
        key = tpm.parse_ecc_public(enrolled["key_public"])
        signature = b64(answer["key_signature"], "key_signature", "device-key") if answer["key_signature"] else b""
        attestation.verify_key_possession(key.key, pending.nonce, signature)
    except Refused as drift:
        raise _quarantine(store, device_id, cert, drift) from None
    raced = store.checked_in(device_id, build.firmware_version, build.security_version, build.fit_sha256)
    if raced is not None:
        raise Refused("rollback", raced)
    return {"device_id": device_id, "state": "attested", "firmware": build.firmware_version}
