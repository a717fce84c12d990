"""Property tests of what the device agent reads from the fleet server (tasks/device/protocol.py): a man in
the middle, or a server that is not the fleet's, answers anything. For any response body, and for edits of
genuine answers (a credential made by the server's own MakeCredential), challenge_of returns the session,
nonce and credential - each within the bound the TPM and the server take - or raises InputError with one
line; certificate_is_for answers True or False for any certificate text. Genuine answers parse back.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import example, given, settings
from hypothesis import strategies as st
from secure_iot_server import tpm

from tasks.core.errors import InputError
from tasks.device import protocol

NONCE = bytes(range(32))
GENUINE: dict[str, Any] = {
    "session": secrets.token_urlsafe(24),
    "nonce": NONCE.hex(),
}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELD_VALUES = JSON | st.sampled_from(["", "zz", "0" * 130, "A" * 4000, "00" * 64, "=", "AAAA"])


def credential() -> str:
    """A credential as the server makes one (tpm2-tools' file format), for an RSA-2048 EK."""
    ek = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return base64.b64encode(tpm.make_credential(ek, b"\x00\x0b" + bytes(32), bytes(32))).decode()


CHALLENGE = GENUINE | {"credential": credential()}


def response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def reads_or_refuses(body: bytes, *, with_credential: bool) -> protocol.Challenge | None:
    try:
        made = protocol.challenge_of(response(body), "POST /attestation/challenge", credential=with_credential)
    except InputError as refused:
        assert "\n" not in str(refused)
        return None
    assert 0 < len(made.session) <= protocol.MAX_SESSION
    assert 0 < len(made.nonce) <= protocol.MAX_NONCE
    assert len(made.credential) <= protocol.MAX_CREDENTIAL
    return made


def test_genuine_answers_parse_to_what_the_server_sent() -> None:
    made = reads_or_refuses(json.dumps(CHALLENGE).encode(), with_credential=True)
    assert made == protocol.Challenge(CHALLENGE["session"], NONCE, base64.b64decode(CHALLENGE["credential"]))
    assert reads_or_refuses(json.dumps(GENUINE).encode(), with_credential=False) == protocol.Challenge(
        GENUINE["session"], NONCE
    )


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()),
    with_credential=st.booleans(),
)
@example(body=b"[]", with_credential=True)  # was: challenge["credential"] on a list, a TypeError
@example(body=b"<html>proxy</html>", with_credential=False)  # was: response.json()'s JSONDecodeError
def test_any_body_is_read_or_refused(body: bytes, with_credential: bool) -> None:
    reads_or_refuses(body, with_credential=with_credential)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(CHALLENGE)), value=FIELD_VALUES, remove=st.booleans())
@example(field="nonce", value="zz", remove=False)  # was: bytes.fromhex's ValueError
@example(field="credential", value=None, remove=True)  # was: KeyError
@example(field="nonce", value="00" * 4096, remove=False)  # was: a 4 KiB nonce handed to `tpm2 quote -q`
def test_any_edit_of_a_genuine_answer_is_read_or_refused(field: str, value: Any, remove: bool) -> None:
    answer = dict(CHALLENGE)
    if remove:
        del answer[field]
    else:
        answer[field] = value
    reads_or_refuses(json.dumps(answer).encode(), with_credential=True)


def certificate(key: Any, signer: ed25519.Ed25519PrivateKey) -> str:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(signer, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


DEVICE_KEY = ec.derive_private_key(0xE1, ec.SECP256R1())  # stands in for the TPM-bound device key
SIGNER = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
POINT = DEVICE_KEY.public_key().public_numbers()
KEY_PUBLIC = b"\x00" * 60 + b"\x00\x20" + POINT.x.to_bytes(32) + b"\x00\x20" + POINT.y.to_bytes(32)
DEVICE_CERTIFICATE = certificate(DEVICE_KEY.public_key(), SIGNER)
ED25519_CERTIFICATE = certificate(SIGNER.public_key(), SIGNER)


def test_the_certificate_of_the_tpm_key_is_for_it() -> None:
    assert protocol.certificate_is_for(DEVICE_CERTIFICATE, KEY_PUBLIC)
    assert not protocol.certificate_is_for(DEVICE_CERTIFICATE, KEY_PUBLIC[:-1] + b"\x00")


@settings(max_examples=200, deadline=None)
@given(
    certificate_pem=st.text(max_size=200)
    | st.integers(0, len(DEVICE_CERTIFICATE) - 1).map(
        lambda at: DEVICE_CERTIFICATE[:at] + "A" + DEVICE_CERTIFICATE[at + 1 :]
    ),
    key_public=st.just(KEY_PUBLIC) | st.binary(max_size=140),
)
@example(certificate_pem="", key_public=KEY_PUBLIC)  # was: load_pem_x509_certificate's ValueError
@example(certificate_pem=ED25519_CERTIFICATE, key_public=KEY_PUBLIC)  # was: X9.62 of an Ed25519 key, ValueError
def test_any_certificate_text_is_for_the_key_or_not(certificate_pem: str, key_public: bytes) -> None:
    assert protocol.certificate_is_for(certificate_pem, key_public) in {True, False}
