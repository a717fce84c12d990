"""The registration protocol: signed manufacturing manifests in, challenges out, attested devices enrolled.

device -> POST /attestation/challenge {ek_certificate_pem, ak_public}
server:   step 1 (EK certificate), AK is a restricted TPM signing key,
          MakeCredential(EK from the certificate, AK name, secret) + a fresh nonce
device:   ActivateCredential in its TPM, quote PCRs 0-9 with the nonce, measured-boot event log;
          the device key created in the TPM under PolicyAuthorize by the fleet's policy authority,
          certified by the AK (TPM2_Certify), and the nonce signed with it (a policy session satisfied
          with the booted build's approval: PolicyPCR(8, 9) + the rollback counter, key_policy.py)
device -> POST /attestation/complete {session, registration_code, activated_secret, quote, signature,
                                      event_log, key_public, key_certify, key_certify_signature,
                                      key_approval, key_signature}
server:   steps 1-11 (attestation.py), then the enrolment and a device certificate from the fleet CA for
          the TPM-bound key's public key
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import attestation, key_policy, tpm
from .attestation import Lockout, Refused
from .enrolment_store import EnrolmentStore
from .identity import issued_by, load_certificate
from .operator_revocation import OperatorCA
from .reference_values import Golden

CHALLENGE_SECONDS = 60.0
MANIFEST_TYPE = "secure-iot/manufacturing-manifest/v1"
DEVICE_CERT_DAYS = 365


@dataclass
class Trust:
    """What the server trusts, all of it configured, none of it learnt from a device."""

    manufacturer_cas: list[x509.Certificate]
    golden: list[Golden]
    fleet_ca_cert: x509.Certificate
    fleet_ca_key: ec.EllipticCurvePrivateKey
    policy_authority: rsa.RSAPublicKey  # approves each build's device-key policy (key_policy.py)
    min_security_version: int = 0  # the fleet's floor; a model's own minimum may be higher
    lockout: Lockout = field(default_factory=Lockout)
    operator_cas: list[OperatorCA] = field(default_factory=list)  # each with its CRL
    model_minimums: dict[str, int] = field(default_factory=dict)  # hardware model -> its minimum security version

    def minimum_for(self, model: str) -> int:
        return max(self.min_security_version, self.model_minimums.get(model, 0))


class ManifestError(ValueError):
    """A manufacturing manifest is unsigned, signed by no known manufacturer, or malformed."""


def b64(value: str, what: str, step: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(step, f"{what} is not base64") from None


def load_manifest(store: EnrolmentStore, trust: Trust, manifest: bytes, signature: bytes) -> int:
    """Verify the manufacturer's signature over the manifest bytes, then enrol its devices."""
    signer = next((ca for ca in trust.manufacturer_cas if _verifies(ca, signature, manifest)), None)
    if signer is None:
        raise ManifestError("the manifest is not signed by a known manufacturer CA")
    try:
        document = json.loads(manifest)
        if document.get("type") != MANIFEST_TYPE:
            raise ManifestError(f"manifest type {document.get('type')!r}, expected {MANIFEST_TYPE}")
        rows = [_enrolment_row(d, signer, hashlib.sha256(manifest).hexdigest()) for d in document["devices"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest: malformed ({exc})") from None
    return store.enrol(rows)


def _verifies(ca: x509.Certificate, signature: bytes, data: bytes) -> bool:
    key = ca.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _enrolment_row(device: dict[str, Any], signer: x509.Certificate, manifest_sha256: str) -> dict[str, Any]:
    cert = load_certificate(str(device["ek_certificate_pem"]).encode())  # ValueError for any unparseable one
    if not issued_by(cert, signer):  # the record's EK certificate is the same manufacturer's
        raise ValueError(f"device {device['device_id']!r}: its EK certificate is not issued by the manifest's signer")
    code = device["registration_code"]
    return {
        "device_id": str(device["device_id"]),
        "model": str(device["model"]),
        "ek_spki_sha256": attestation.spki_sha256(cert.public_key()),
        "code_salt": bytes.fromhex(code["salt"]),
        "code_hash": bytes.fromhex(code["hash"]),
        "code_n": int(code["n"]),
        "code_r": int(code["r"]),
        "code_p": int(code["p"]),
        "manifest_sha256": manifest_sha256,
    }


def challenge(store: EnrolmentStore, trust: Trust, ek_certificate_pem: str, ak_public_b64: str) -> dict[str, str]:
    """Unauthenticated: everything in the (bounded) body is parsed and the EK certificate verified before
    the one enrolment is looked up by an index; the one write replaces the device's outstanding challenge."""
    ak_public = b64(ak_public_b64, "ak_public", "attestation-key")
    try:
        ak = tpm.parse_public(ak_public)
    except tpm.TpmFormatError as exc:
        raise Refused("attestation-key", str(exc)) from None
    if not ak.is_attestation_key:
        raise Refused("attestation-key", "not a restricted signing key created in the TPM (fixedTPM)")
    ek_cert, enrolment = attestation.verify_ek_certificate(
        ek_certificate_pem, trust.manufacturer_cas, store.enrolment, attestation.now_utc()
    )
    ek = ek_cert.public_key()
    if not isinstance(ek, rsa.RSAPublicKey):
        raise Refused("ek-certificate", "only RSA endorsement keys are supported")
    secret, nonce, session = os.urandom(32), os.urandom(32), secrets.token_urlsafe(24)
    store.open_challenge(
        {
            "session": session,
            "device_id": enrolment.device_id,
            "ak_public": ak_public,
            "secret_sha256": hashlib.sha256(secret).digest(),
            "nonce": nonce,
            "expires_at": time.time() + CHALLENGE_SECONDS,
        }
    )
    return {
        "session": session,
        "credential": base64.b64encode(tpm.make_credential(ek, ak.name, secret)).decode(),
        "nonce": nonce.hex(),
    }


def check_code(store: EnrolmentStore, lockout: Lockout, enrolment: attestation.Enrolment, code: str) -> None:
    """Step 2 with its lockout: the attempt is counted (atomically) before the code is evaluated, and
    not evaluated at all when the lockout refuses it - the right code then gets the very refusal a
    wrong one gets. The right code's attempt stays counted until the registration ends (complete)."""
    if not store.reserve_code_attempt(enrolment.device_id, time.time(), lockout):
        raise Refused(attestation.CODE_STEP, attestation.LOCKED_OUT)
    attestation.verify_registration_code(code, enrolment)


def complete(store: EnrolmentStore, trust: Trust, answer: dict[str, Any]) -> dict[str, Any]:
    """Steps 1-11 in order (the credential, step 2, before the code, step 3); the enrolment is written only
    after all passed. Past the code, a refusal gives the right code's counted attempt back; a
    registration clears the device's attempts."""
    pending = store.take_challenge(str(answer["session"]))
    if pending is None:
        raise Refused("nonce", "unknown or already answered session (a challenge is single-use)")
    _, enrolment = attestation.verify_ek_certificate(
        str(answer["ek_certificate_pem"]), trust.manufacturer_cas, store.enrolment, attestation.now_utc()
    )
    if enrolment.device_id != pending["device_id"]:
        raise Refused("ek-certificate", "not the EK this session's challenge was made for")
    # The TPM first, then the code: only the EK's TPM can unwrap the secret, so someone holding just
    # the EK certificate never has a code evaluated or counted (no oracle, no scrypt at their cost).
    attestation.verify_credential_activation(
        pending["secret_sha256"], b64(answer["activated_secret"], "activated_secret", "credential-activation")
    )
    check_code(store, trust.lockout, enrolment, str(answer["registration_code"]))
    try:
        return _attested(store, trust, answer, pending, enrolment)
    except Refused:
        store.give_back_code_attempt(enrolment.device_id, trust.lockout)
        raise


def _attested(
    store: EnrolmentStore,
    trust: Trust,
    answer: dict[str, Any],
    pending: dict[str, Any],
    enrolment: attestation.Enrolment,
) -> dict[str, Any]:
    """Steps 4-11 and the enrolment, for a device that activated the credential and gave the right code."""
    ak = tpm.parse_public(pending["ak_public"])
    quote = attestation.verify_quote_signature(
        ak, b64(answer["quote"], "quote", "quote-signature"), b64(answer["signature"], "signature", "quote-signature")
    )
    attestation.verify_nonce(quote, pending["nonce"], pending["expires_at"], time.time())
    event_log = [(int(e["pcr"]), str(e["digest"]).lower()) for e in answer["event_log"]]
    attestation.verify_pcr_digest(quote, event_log)
    build = attestation.verify_reference_values(event_log, trust.golden, enrolment.model)
    attestation.verify_security_version(build, trust.minimum_for(enrolment.model))
    attestation.verify_no_rollback(build, store.security_floor(enrolment.device_id))  # after a release
    key_public = b64(answer["key_public"], "key_public", "device-key")
    key = attestation.verify_device_key(
        ak,
        key_public,
        b64(answer["key_certify"], "key_certify", "device-key"),
        b64(answer["key_certify_signature"], "key_certify_signature", "device-key"),
        key_policy.key_policy(trust.policy_authority),
    )
    attestation.verify_approval_used(build, str(answer["key_approval"]))
    attestation.verify_key_possession(
        key.key, pending["nonce"], b64(answer["key_signature"], "key_signature", "device-key")
    )
    tls_key = attestation.verify_tls_key(
        key.key,
        pending["nonce"],
        str(answer.get("tls_public_key", "")),
        b64(str(answer.get("tls_key_signature", "")), "tls_key_signature", "tls-key"),
    )
    cert = issue_device_certificate(trust, enrolment.device_id, key.key)
    certificate = cert.public_bytes(serialization.Encoding.PEM).decode()
    tls_cert = issue_device_certificate(trust, enrolment.device_id, tls_key) if tls_key is not None else None
    store.attest(
        {
            "device_id": enrolment.device_id,
            "certificate_pem": certificate,
            "firmware_version": build.firmware_version,
            "security_version": build.security_version,
            "fit_sha256": build.fit_sha256,
            "ak_public": pending["ak_public"],
            "key_public": key_public,
            "certificate_serial": format(cert.serial_number, "x"),
            "tls_certificate_serial": format(tls_cert.serial_number, "x") if tls_cert is not None else None,
        }
    )
    done = {"device_id": enrolment.device_id, "certificate_pem": certificate, "firmware": build.firmware_version}
    if tls_cert is not None:
        done["tls_certificate_pem"] = tls_cert.public_bytes(serialization.Encoding.PEM).decode()
    return done


def issue_device_certificate(trust: Trust, device_id: str, key: ec.EllipticCurvePublicKey) -> x509.Certificate:
    """The fleet CA's certificate for the TPM-bound key (no CSR: TPM2_Certify proved the key, the nonce
    signature its possession)."""
    now = attestation.now_utc()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .issuer_name(trust.fleet_ca_cert.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=DEVICE_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(trust.fleet_ca_key, hashes.SHA256())
    )
    return cert
