"""Request/response models; public keys are parsed and policy-checked with `cryptography`."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import AwareDatetime, Base64Bytes, BaseModel, ConfigDict, Field, field_validator

DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,62}$"
SEMVER_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 2048

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def load_public_key(pem: str) -> PublicKey:
    """Parse a PEM public key and enforce the key policy; raises ValueError with a clear message."""
    if "PRIVATE KEY" in pem:
        raise ValueError("private key material must never be sent; submit the PEM public key only")
    if "-----BEGIN" not in pem or not pem.isascii():
        raise ValueError("public_key_pem is not PEM: expected '-----BEGIN PUBLIC KEY-----'")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("public_key_pem is not a valid PEM-encoded public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise ValueError(f"EC curve {key.curve.name} not allowed; use P-256 or P-384")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is too small; at least {MIN_RSA_BITS} required")
        return key
    raise ValueError(f"key type {type(key).__name__} not allowed; use EC P-256/P-384, Ed25519 or RSA>=2048")


def fingerprint(pem: str) -> str:
    """SHA-256 hex of the DER SubjectPublicKeyInfo."""
    der = load_public_key(pem).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=DEVICE_ID_PATTERN, description="lower-case slug, 3..63 chars")
    model: str = Field(min_length=1, max_length=64)
    firmware_version: str = Field(pattern=SEMVER_PATTERN, max_length=64)
    public_key_pem: str = Field(max_length=4096)

    @field_validator("public_key_pem")
    @classmethod
    def _check_key(cls, value: str) -> str:
        """Validate and store the canonical SubjectPublicKeyInfo PEM."""
        key = load_public_key(value)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class DeviceOut(BaseModel):
    id: str
    model: str
    firmware_version: str
    public_key_pem: str
    fingerprint: str = Field(description="sha256 hex of the DER SubjectPublicKeyInfo")
    registered_at: AwareDatetime


MANIFEST_MAX_BODY = 512 * 1024  # the manifest upload's own body bound (base64 of up to 384 KiB)


class ManifestIn(BaseModel):
    """A manufacturing manifest (the exact signed bytes) and the manufacturer's ECDSA signature over them."""

    model_config = ConfigDict(extra="forbid")
    manifest: Base64Bytes = Field(max_length=384 * 1024)
    signature: Base64Bytes = Field(max_length=200)


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ek_certificate_pem: str = Field(max_length=4096)
    ak_public: str = Field(max_length=1024, description="TPM2B_PUBLIC of the AK, base64")


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pcr: int = Field(ge=0, le=23)
    digest: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session: str = Field(max_length=64)
    ek_certificate_pem: str = Field(max_length=4096)
    registration_code: str = Field(max_length=64)
    activated_secret: str = Field(max_length=256, description="ActivateCredential's output, base64")
    quote: str = Field(max_length=1024, description="TPMS_ATTEST, base64")
    signature: str = Field(max_length=1024, description="TPMT_SIGNATURE, base64")
    event_log: list[Event] = Field(max_length=64)
    key_public: str = Field(max_length=512, description="TPM2B_PUBLIC of the TPM-bound device key, base64")
    key_certify: str = Field(
        max_length=1024, description="TPM2_Certify's TPMS_ATTEST of the device key by the AK, base64"
    )
    key_certify_signature: str = Field(max_length=1024, description="TPMT_SIGNATURE of key_certify, base64")
    key_approval: str = Field(
        max_length=64, description="hex: the approved policy digest the device presented to its TPM (key_policy.py)"
    )
    key_signature: str = Field(max_length=256, description="the device key's ECDSA (DER) over the nonce, base64")
    tls_public_key: str = Field(
        default="", max_length=1024, description="PEM: a P-256 key the device made for TLS (optional)"
    )
    tls_key_signature: str = Field(
        default="", max_length=256, description="the device key's ECDSA (DER) binding tls_public_key to this session"
    )


class CheckinIn(BaseModel):
    """A re-attestation: the device certificate, a fresh quote and event log, the nonce signed by the device key."""

    model_config = ConfigDict(extra="forbid")
    session: str = Field(max_length=64)
    certificate_pem: str = Field(max_length=4096)
    quote: str = Field(max_length=1024, description="TPMS_ATTEST, base64")
    signature: str = Field(max_length=1024, description="TPMT_SIGNATURE, base64")
    event_log: list[Event] = Field(max_length=64)
    key_approval: str = Field(
        max_length=64, description="hex: the approved policy digest the device presented to its TPM (key_policy.py)"
    )
    key_signature: str = Field(
        max_length=256, description="the device key's ECDSA (DER) over the nonce, base64; empty if the key is unusable"
    )


class ReleaseIn(BaseModel):
    """An operator's release of a quarantined device: why (re-flashed, inspected), kept in the audit trail."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=500)


class TelemetryIn(BaseModel):
    """A device's periodic report; small and closed (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")

    uptime_s: int = Field(ge=0, le=2**31 - 1)  # the column is a 32-bit INTEGER on PostgreSQL
    firmware_version: str = Field(pattern=SEMVER_PATTERN, max_length=64)
