"""Field registration: the ordered verify_* steps a device must pass before it is enrolled.

Each step either returns what the next one needs or raises Refused(step, reason); the API runs
them in the order below and writes the enrolment only after the last one passed:
  1 verify_ek_certificate      EK certificate chains to a known manufacturer CA; enrolled, unclaimed
  2 verify_credential_activation  the AK lives in the TPM that owns that EK (MakeCredential secret back)
  3 verify_registration_code   the printed code (scrypt, constant-time), counted before it is evaluated,
                               locked out; only for a request that proved the TPM in step 2
  4 verify_quote_signature     the quote is signed by that AK
  5 verify_nonce               the quote carries this session's nonce (fresh, single-use)
  6 verify_pcr_digest          the quoted PCR digest equals the replay of the event log
  7 verify_reference_values    every measured component equals a signed build's reference values, and that
                               build is for the hardware model the device was enrolled as
  8 verify_security_version    that build is not below the minimum security version for that model
  9 verify_device_key          the device key lives in that TPM (TPM2_Certify by the AK), cannot leave it,
                               and is usable only through PolicyAuthorize by the fleet's policy authority
                               (key_policy.py): an approval per signed build, PolicyPCR + the rollback counter
 10 verify_approval_used       the approval the device says it used is the one for the build it booted
 11 verify_key_possession      the device key signed this session's nonce (so the PCRs were that build's
                               just now, and its TPM counter had not moved past that build)

 12 verify_tls_key (optional) a P-256 key the device made for TLS, vouched for by the device key in this
                               session: the fleet CA certifies it too, and a quarantine revokes both

Re-attestation on check-in (checkin.py) runs 4-8, 10 and 11 again against the AK and device key
enrolled at registration, and refuses a build older than the one the device last attested on.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from . import tpm
from .identity import load_certificate
from .reference_values import BOOT_PCRS as BOOT_PCRS  # the PCRs a quote covers (re-exported)
from .reference_values import Golden

if TYPE_CHECKING:
    from collections.abc import Callable

# What each build's key approval (key_policy.py) binds the device key to: the PCRs U-Boot extends
# (8: the verifying key, 9: the FIT).
# tpm2-tools 5.4 selects at most 8 PCRs in a policy; PCRs 0-7 are never extended on this device.
POLICY_PCRS = (8, 9)
ZERO = bytes(32)


class Refused(Exception):
    """A registration step failed: ``step`` names it, ``reason`` says why (shown to the device)."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass(frozen=True)
class Enrolment:
    """A manufactured device as its signed manufacturing record described it."""

    device_id: str
    model: str
    ek_spki_sha256: str
    code_salt: bytes
    code_hash: bytes
    code_params: tuple[int, int, int]  # scrypt n, r, p
    claimed: bool


@dataclass(frozen=True)
class Lockout:
    max_failures: int = 3
    seconds: float = 300.0


def spki_sha256(key: Any) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def verify_ek_certificate(
    ek_cert_pem: str,
    manufacturer_cas: list[x509.Certificate],
    enrolment_of: Callable[[str], Enrolment | None],
    now: datetime,
) -> tuple[x509.Certificate, Enrolment]:
    """Step 1: issued by a known manufacturer CA, within validity, and the EK of an unclaimed device.
    The certificate is verified first; only then is its one enrolment looked up (``enrolment_of``: by
    the EK's SPKI sha256), so a request that is not a manufacturer's EK certificate costs no storage."""
    step = "ek-certificate"
    try:
        cert = load_certificate(ek_cert_pem.encode())
    except ValueError:
        raise Refused(step, "not a PEM X.509 certificate") from None
    if not any(_issued_by(cert, ca) for ca in manufacturer_cas):
        raise Refused(step, "not issued by a known manufacturer CA")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Refused(step, "outside its validity period")
    enrolment = enrolment_of(spki_sha256(cert.public_key()))
    if enrolment is None:
        raise Refused(step, "this EK belongs to no enrolled device (no signed manufacturing record)")
    if enrolment.claimed:
        raise Refused(step, f"device {enrolment.device_id} is already claimed")
    return cert, enrolment


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    return constraints.ca


def code_digest(code: str, salt: bytes, params: tuple[int, int, int]) -> bytes:
    n, r, p = params
    return hashlib.scrypt(code.strip().upper().encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


CODE_STEP = "registration-code"
# The refusal of every attempt the lockout did not let through: the same for the right code as for a
# wrong one, with no time in it, so a refusal while locked out says nothing about the code.
LOCKED_OUT = "locked out after too many wrong registration codes; try again later"


def verify_registration_code(code: str, enrolment: Enrolment) -> None:
    """Step 3: the printed code, evaluated only after the attempt was counted (EnrolmentStore.
    reserve_code_attempt; refused with LOCKED_OUT, unevaluated, when the lockout says no)."""
    if not hmac.compare_digest(code_digest(code, enrolment.code_salt, enrolment.code_params), enrolment.code_hash):
        raise Refused(CODE_STEP, "wrong registration code")


def verify_credential_activation(expected_sha256: bytes, activated: bytes) -> None:
    """Step 2: the secret only the EK's TPM could unwrap, and only for the AK name it was bound to."""
    if not hmac.compare_digest(hashlib.sha256(activated).digest(), expected_sha256):
        raise Refused("credential-activation", "the activated credential is not the server's secret")


def verify_quote_signature(ak: tpm.PublicKey, attest: bytes, signature: bytes) -> tpm.Quote:
    """Step 4: a TPM-made quote (TPMS_ATTEST) signed by the activated AK."""
    step = "quote-signature"
    try:
        quote = tpm.parse_quote(attest)
        ak.key.verify(tpm.parse_signature(signature), attest, padding.PKCS1v15(), hashes.SHA256())
    except tpm.TpmFormatError as exc:
        raise Refused(step, str(exc)) from None
    except InvalidSignature:
        raise Refused(step, "the quote's signature does not verify with the attestation key") from None
    return quote


def verify_nonce(quote: tpm.Quote, nonce: bytes, expires_at: float, now: float) -> None:
    """Step 5: this session's nonce (the session was consumed when the answer arrived: single-use)."""
    if now > expires_at:
        raise Refused("nonce", "the challenge expired")
    if not hmac.compare_digest(quote.nonce, nonce):
        raise Refused("nonce", "the quote carries another nonce (a replayed or foreign quote)")


def replay(event_log: list[tuple[int, str]]) -> dict[int, bytes]:
    pcrs = dict.fromkeys(BOOT_PCRS, ZERO)
    for index, digest in event_log:
        if index not in pcrs:
            raise Refused("pcr-digest", f"event for PCR {index}, outside the boot PCRs")
        pcrs[index] = hashlib.sha256(pcrs[index] + bytes.fromhex(digest)).digest()
    return pcrs


def verify_pcr_digest(quote: tpm.Quote, event_log: list[tuple[int, str]]) -> None:
    """Step 6: the log explains the quoted PCRs exactly (an edited log no longer replays to them)."""
    if quote.pcrs != BOOT_PCRS:
        raise Refused("pcr-digest", f"quote covers PCRs {list(quote.pcrs)}, expected {list(BOOT_PCRS)}")
    pcrs = replay(event_log)
    if not hmac.compare_digest(tpm.pcr_composite_digest([pcrs[i] for i in BOOT_PCRS]), quote.pcr_digest):
        raise Refused("pcr-digest", "the quoted PCR digest is not the replay of the event log")


def verify_reference_values(event_log: list[tuple[int, str]], golden: list[Golden], model: str) -> Golden:
    """Step 7: the whole measured boot is exactly one signed build's, and a build for this device's model."""
    matches = [build for build in golden if tuple(event_log) == build.events]
    for build in matches:
        if build.hardware_model == model:
            return build
    if matches:
        other = matches[0]
        raise Refused(
            "reference-values",
            f"measurements are firmware {other.firmware_version} for model {other.hardware_model}; "
            f"this device is enrolled as model {model}",
        )
    measured = ", ".join(f"PCR {i}: {d[:12]}" for i, d in event_log)
    raise Refused("reference-values", f"measurements ({measured}) match no signed firmware build")


def verify_security_version(build: Golden, minimum: int) -> None:
    """Step 8: no rollback to a signed but superseded firmware (the minimum for the build's model)."""
    if build.security_version < minimum:
        raise Refused(
            "security-version",
            f"firmware {build.firmware_version} has security version {build.security_version} "
            f"< minimum {minimum} for model {build.hardware_model}",
        )


def now_utc() -> datetime:
    return datetime.now(UTC)


def verify_device_key(
    ak: tpm.PublicKey, key_public: bytes, certify: bytes, certify_signature: bytes, key_policy: bytes
) -> tpm.DeviceKey:
    """Step 9: TPM2_Certify by the activated AK names exactly this key, usable only through ``key_policy``
    (PolicyAuthorize by the fleet's policy authority, key_policy.py)."""
    step = "device-key"
    try:
        key = tpm.parse_ecc_public(key_public)
        certified = tpm.parse_certify(certify)
        ak.key.verify(tpm.parse_signature(certify_signature), certify, padding.PKCS1v15(), hashes.SHA256())
    except tpm.TpmFormatError as exc:
        raise Refused(step, str(exc)) from None
    except InvalidSignature:
        raise Refused(step, "the key certification's signature does not verify with the attestation key") from None
    if not hmac.compare_digest(certified.name, key.name):
        raise Refused(step, "the AK certified another object, not this key")
    if not key.policy_bound:
        raise Refused(
            step,
            "not a non-exportable signing key usable only through its policy "
            "(fixedTPM, fixedParent, sensitiveDataOrigin, sign, no userWithAuth)",
        )
    if not hmac.compare_digest(key.auth_policy, key_policy):
        raise Refused(step, "the key's policy is not PolicyAuthorize by the fleet's policy authority")
    return key


def verify_no_rollback(build: Golden, floor: int | None) -> None:
    """A genuine signed build with a lower security version than the device ever attested on (``floor``,
    kept across a release from quarantine) is a rollback: its TPM counter already refuses the key."""
    if floor is not None and build.security_version < floor:
        raise Refused(
            "rollback",
            f"booted firmware {build.firmware_version} (security version {build.security_version}) is below "
            f"security version {floor} this device attested on; its TPM rollback counter refuses the device key",
        )


def verify_approval_used(build: Golden, used_hex: str) -> None:
    """Step 10: the device says which approval it presented to its TPM; it must be the booted build's."""
    try:
        used = bytes.fromhex(used_hex)
    except ValueError:
        raise Refused("device-key", "key_approval is not hex") from None
    if not hmac.compare_digest(used, build.approval):
        raise Refused(
            "device-key",
            f"the key approval used ({used_hex[:16]}) is not the one for firmware {build.firmware_version}, "
            "the build it booted",
        )


TLS_BINDING = b"secure-iot tls identity v1\0"  # what the device key signs to vouch for a TLS key


def tls_binding(nonce: bytes, tls_public: ec.EllipticCurvePublicKey) -> bytes:
    """The message binding a TLS key to this registration: context, the session's nonce, sha256(SPKI)."""
    spki = tls_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return TLS_BINDING + nonce + hashlib.sha256(spki).digest()


def verify_tls_key(
    key: ec.EllipticCurvePublicKey, nonce: bytes, tls_pem: str, signature: bytes
) -> ec.EllipticCurvePublicKey | None:
    """Step 12 (optional): a TLS key the device made, vouched for by its TPM-bound key in this session, so
    the TLS identity it gets is revoked with the device (the TPM key itself cannot do TLS here)."""
    if not tls_pem:
        return None
    try:
        tls_public = serialization.load_pem_public_key(tls_pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise Refused("tls-key", "tls_public_key is not a PEM public key") from None
    if not isinstance(tls_public, ec.EllipticCurvePublicKey) or tls_public.curve.name != "secp256r1":
        raise Refused("tls-key", "tls_public_key must be an ECDSA P-256 key")
    try:
        key.verify(signature, tls_binding(nonce, tls_public), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("tls-key", "the device key did not vouch for this TLS key in this session") from None
    return tls_public


def verify_key_possession(key: ec.EllipticCurvePublicKey, nonce: bytes, signature: bytes) -> None:
    """Step 11: the device key signed the server's nonce (ECDSA-SHA256, DER), so it is usable right now."""
    if not signature:
        raise Refused("device-key", "no signature by the device key (the key is missing or unusable)")
    try:
        key.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("device-key", "the nonce's signature does not verify with the device key") from None
