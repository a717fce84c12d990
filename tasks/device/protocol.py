"""The device agent's side of registration and check-in over HTTP: what it sends, never what it decides.

Registration (POST /attestation/challenge, then /attestation/complete) and re-attestation (GET
/attestation/nonce, then POST /attestation/checkin), each answered with what only this device's
TPM can produce. The TPM-bound device key signs the server's nonce through a policy session
satisfied with the booted build's approval (key_policy.py); a TPM that refuses it (other firmware
booted, or the rollback counter past that build) leaves the signature empty, and the server decides
what that means.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.core import atomic
from tasks.core.errors import InputError, ToolError
from tasks.device.agent import Agent
from tasks.device.key_policy import KeyUse

if TYPE_CHECKING:
    import httpx

Events = list[tuple[int, str]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# What the agent reads from the fleet server's answers, bounded before it is decoded: the session goes
# back as it came (the server takes at most 64 characters), the nonce into a quote's qualifying data
# (TPM2B_DATA: at most a sha512 digest), the credential into `tpm2 activatecredential` (tpm2-tools' file
# of an ID_OBJECT and the seed encrypted to an RSA-4096 EK at most: about 620 bytes).
MAX_SESSION = 64
MAX_NONCE = 64
MAX_CREDENTIAL = 1024


@dataclass(frozen=True)
class Challenge:
    """A server's challenge: POST /attestation/challenge's (with a credential) or GET /attestation/nonce's."""

    session: str
    nonce: bytes
    credential: bytes = b""


def challenge_of(response: httpx.Response, where: str, *, credential: bool) -> Challenge:
    """The session, nonce (hex) and, for a registration, credential (base64) the fleet server answered to
    ``where``; an InputError with one line for anything else."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise InputError(f"the fleet server's answer to {where} is not a JSON object: {response.text[:80]!r}")
    session = _text(answer, "session", where, MAX_SESSION)
    nonce = _decoded(answer, "nonce", where, MAX_NONCE, "hex")
    made = _decoded(answer, "credential", where, MAX_CREDENTIAL, "base64") if credential else b""
    return Challenge(session, nonce, made)


def _text(answer: dict[str, Any], field: str, where: str, limit: int) -> str:
    value = answer.get(field)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InputError(f"the fleet server's answer to {where}: {field} is not a string of 1 to {limit} characters")
    return value


def _decoded(answer: dict[str, Any], field: str, where: str, limit: int, encoding: str) -> bytes:
    """A hex or base64 field of 1 to ``limit`` bytes, its length bounded before it is decoded."""
    text = _text(answer, field, where, 2 * limit)
    try:
        value = bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise InputError(f"the fleet server's answer to {where}: {field} is not {encoding}") from None
    if not 0 < len(value) <= limit:
        raise InputError(f"the fleet server's answer to {where}: {field} is {len(value)} bytes, not 1 to {limit}")
    return value


def certificate_is_for(certificate_pem: str, key_public: bytes) -> bool:
    """The certificate's EC point is the TPM key's (TPM2B_PUBLIC ends with TPMS_ECC_POINT: x, y, 32 bytes each).
    Anything that is not such a certificate is not this key's."""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    x, y = key_public[-66:-34], key_public[-32:]
    return len(key_public) > 68 and point == b"\x04" + x + y


def key_signature(agent: Agent, nonce: bytes, use: KeyUse) -> bytes:
    try:
        return agent.sign_with_device_key(nonce, use.approval, use.authority)
    except ToolError:
        return b""  # TPM_RC_POLICY_FAIL (PCRs not the approved build's, counter past it) or no key


TLS_BINDING = b"secure-iot tls identity v1\0"  # = app/src/secure_iot_server/attestation.py (the wire format)


def tls_identity(agent: Agent, nonce: bytes, use: KeyUse, key_file: Path) -> dict[str, str]:
    """A P-256 TLS key made on the device (``key_file``, 0600) and the device key's signature binding it to
    this registration: the fleet CA certifies it as the device's TLS identity, revoked with the device
    (the TPM-bound key cannot do TLS: README). Empty fields if the TPM refuses the device key."""
    tls_key = ec.generate_private_key(ec.SECP256R1())
    pem = tls_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic.write_secret(key_file, pem)
    public = tls_key.public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    signature = key_signature(agent, TLS_BINDING + nonce + hashlib.sha256(spki).digest(), use)
    if not signature:
        return {}
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"tls_public_key": public_pem.decode(), "tls_key_signature": b64(signature)}


def register(agent: Agent, client: httpx.Client, code: str, event_log: Events, use: KeyUse) -> httpx.Response:
    """Challenge (EK certificate, new AK), activation, quote, device key created + certified + signing."""
    body = {"ek_certificate_pem": agent.ek_certificate_pem(), "ak_public": b64(agent.create_ak())}
    first = client.post("/attestation/challenge", json=body)
    if first.status_code != 200:
        return first
    challenge = challenge_of(first, "POST /attestation/challenge", credential=True)
    secret = agent.activate_credential(challenge.credential)
    nonce = challenge.nonce
    attest, signature = agent.quote(nonce)
    key_public = agent.create_device_key(use.authority)
    certify, certify_signature = agent.certify_device_key()
    answer = {
        "session": challenge.session,
        "ek_certificate_pem": body["ek_certificate_pem"],
        "registration_code": code,
        "activated_secret": b64(secret),
        "quote": b64(attest),
        "signature": b64(signature),
        "event_log": [{"pcr": p, "digest": d} for p, d in event_log],
        "key_public": b64(key_public),
        "key_certify": b64(certify),
        "key_certify_signature": b64(certify_signature),
        "key_approval": use.approval.policy.hex(),
        "key_signature": b64(key_signature(agent, nonce, use)),
        **tls_identity(agent, nonce, use, agent.work / "tls.key"),
    }
    return client.post("/attestation/complete", json=answer)


def checkin(agent: Agent, client: httpx.Client, certificate_pem: str, event_log: Events, use: KeyUse) -> httpx.Response:
    """Re-attestation after a power-on: the AK loaded again, a fresh quote, the nonce signed by the device key."""
    agent.load_ak()
    issued = client.get("/attestation/nonce")
    if issued.status_code != 200:
        return issued
    session = challenge_of(issued, "GET /attestation/nonce", credential=False)
    nonce = session.nonce
    attest, signature = agent.quote(nonce)
    body = {
        "session": session.session,
        "certificate_pem": certificate_pem,
        "quote": b64(attest),
        "signature": b64(signature),
        "event_log": [{"pcr": p, "digest": d} for p, d in event_log],
        "key_approval": use.approval.policy.hex(),
        "key_signature": b64(key_signature(agent, nonce, use)),
    }
    return client.post("/attestation/checkin", json=body)
