"""Golden values: only from a reference-values attestation the pipeline's key signed.

A Sigstore bundle as `cosign attest-blob --bundle` writes it (the legacy form with a
base64Signature holding the DSSE envelope, or a v0.3 bundle with a dsseEnvelope), whose payload
is an in-toto Statement: predicateType = the reference-values URN, subject = the FIT by sha256,
predicate = the firmware build's reference values (hardware_model, firmware_version, security_version,
fit_sha256, event_log, pcrs, and key_approval: the device-key approval for this build, checked
by key_policy.py). The DSSE signature (PAE) is checked against the pinned pipeline public key
before anything inside is read; a firmware nobody signed never becomes golden.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

REFERENCE_VALUES_PREDICATE_TYPE = "urn:secure-iot:attestation:reference-values:v1"  # = tasks/core/media_types
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
BOOT_PCRS = tuple(range(10))  # what the quote must cover: everything the boot chain may extend


class ReferenceValuesError(ValueError):
    """A reference-values bundle is not signed by the pipeline key or does not say what golden values must."""


@dataclass(frozen=True)
class Golden:
    """One signed build's measured boot: the (PCR, digest) events and the versions it declares."""

    fit_sha256: str
    hardware_model: str  # the board the build is for: a device is judged only against its model's builds
    firmware_version: str
    security_version: int
    events: tuple[tuple[int, str], ...]
    approval: bytes = b""  # the device-key policy digest the policy authority approved for this build
    approval_signature: bytes = b""  # its RSASSA-SHA256 signature (key_policy.verify_approval checks both)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _json_object(text: bytes, what: str) -> dict[str, Any]:
    """JSON that must be an object: anything else, and nesting deeper than the parser's stack, is refused."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: json's C parser over a deeply nested value
        raise ReferenceValuesError(f"{what}: not JSON ({exc})") from None
    return _object(value, what)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReferenceValuesError(f"{what}: expected a JSON object, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ReferenceValuesError(f"{what}: expected a JSON list, not {type(value).__name__}")
    return value


def _envelope(bundle: dict[str, Any]) -> dict[str, Any]:
    if isinstance(bundle.get("dsseEnvelope"), dict):
        return dict(bundle["dsseEnvelope"])
    if isinstance(bundle.get("base64Signature"), str):
        try:
            envelope = base64.b64decode(bundle["base64Signature"], validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ReferenceValuesError(f"bundle: base64Signature is not base64 ({exc})") from None
        return _json_object(envelope, "bundle: base64Signature")
    raise ReferenceValuesError("bundle: neither a dsseEnvelope nor a base64Signature (cosign attest-blob --bundle)")


def verify_bundle(raw: bytes, pipeline_key: ec.EllipticCurvePublicKey) -> Golden:
    """Signature first (any signature by the pipeline key over the PAE), then the statement's contents.
    Whatever ``raw`` holds, the answer is a Golden or a ReferenceValuesError."""
    envelope = _envelope(_json_object(raw, "bundle"))
    try:
        payload_type = str(envelope["payloadType"])
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ReferenceValuesError(f"bundle: not a DSSE envelope ({exc})") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise ReferenceValuesError(f"bundle: payloadType {payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE}")
    if not any(_signed(pipeline_key, sig, pae(payload_type, payload)) for sig in signatures):
        raise ReferenceValuesError("bundle: no signature verifies with the pipeline key")
    return _golden(_json_object(payload, "statement"))


def _signed(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _golden(statement: dict[str, Any]) -> Golden:
    if statement.get("_type") not in STATEMENT_TYPES:
        raise ReferenceValuesError(f"statement: _type {statement.get('_type')!r} is not an in-toto Statement")
    if statement.get("predicateType") != REFERENCE_VALUES_PREDICATE_TYPE:
        raise ReferenceValuesError(f"statement: predicateType {statement.get('predicateType')!r}")
    subjects = [
        str(_object(_object(s, "statement: subject").get("digest", {}), "statement: subject digest").get("sha256", ""))
        for s in _list(statement.get("subject", []), "statement: subject")
    ]
    predicate = _object(statement.get("predicate"), "statement: predicate")
    log = _list(predicate.get("event_log"), "predicate: event_log")
    approved = _object(predicate.get("key_approval"), "predicate: key_approval")
    try:
        fit = str(predicate["fit_sha256"])
        events = tuple((int(e["pcr"]), str(e["digest"])) for e in log)
        counter_at_most = int(approved.get("counter_at_most", -1))
        golden = Golden(
            fit,
            str(predicate["hardware_model"]),
            str(predicate["firmware_version"]),
            int(predicate["security_version"]),
            events,
            bytes.fromhex(str(approved["policy"])),
            base64.b64decode(str(approved["signature"]), validate=True),
        )
    except (KeyError, TypeError, ValueError, OverflowError, binascii.Error) as exc:  # OverflowError: int(Infinity)
        raise ReferenceValuesError(f"predicate: missing or malformed {exc}") from None
    if subjects != [fit] or not SHA256_HEX.match(fit):
        raise ReferenceValuesError(f"statement: subject {subjects} is not the predicate's FIT sha256 {fit}")
    if not events or not all(pcr in BOOT_PCRS and SHA256_HEX.match(d) for pcr, d in events):
        raise ReferenceValuesError(f"predicate: event_log must list sha256 digests into PCRs {list(BOOT_PCRS)}")
    if counter_at_most != golden.security_version:
        raise ReferenceValuesError("key_approval: counter_at_most is not the build's security_version")
    if (9, fit) not in events:
        raise ReferenceValuesError("predicate: the FIT itself is not measured into PCR 9 in the event log")
    return golden
