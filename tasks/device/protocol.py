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
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.core import atomic
from tasks.core.errors import ToolError
from tasks.device.agent import Agent
from tasks.device.key_policy import KeyUse

if TYPE_CHECKING:
    import httpx

Events = list[tuple[int, str]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def certificate_is_for(certificate_pem: str, key_public: bytes) -> bool:
    """The certificate's EC point is the TPM key's (TPM2B_PUBLIC ends with TPMS_ECC_POINT: x, y, 32 bytes each)."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    point = cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
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
    challenge: dict[str, Any] = first.json()
    secret = agent.activate_credential(base64.b64decode(challenge["credential"]))
    nonce = bytes.fromhex(challenge["nonce"])
    attest, signature = agent.quote(nonce)
    key_public = agent.create_device_key(use.authority)
    certify, certify_signature = agent.certify_device_key()
    answer = {
        "session": challenge["session"],
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
    session: dict[str, Any] = issued.json()
    nonce = bytes.fromhex(session["nonce"])
    attest, signature = agent.quote(nonce)
    body = {
        "session": session["session"],
        "certificate_pem": certificate_pem,
        "quote": b64(attest),
        "signature": b64(signature),
        "event_log": [{"pcr": p, "digest": d} for p, d in event_log],
        "key_approval": use.approval.policy.hex(),
        "key_signature": b64(key_signature(agent, nonce, use)),
    }
    return client.post("/attestation/checkin", json=body)
