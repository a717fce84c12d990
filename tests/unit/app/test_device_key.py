"""The server's half of the TPM-bound device key (step 9) on a real swtpm key, certification and AK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from secure_iot_server import attestation, key_policy, tpm
from secure_iot_server.attestation import Refused

FIXTURE = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "tpm" / "device-key.json").read_text())
KEY = bytes.fromhex(FIXTURE["key_public"])
CERTIFY = bytes.fromhex(FIXTURE["certify"])
CERTIFY_SIG = bytes.fromhex(FIXTURE["certify_signature"])
AK = tpm.parse_public(bytes.fromhex(FIXTURE["ak_public"]))
AUTHORITY = serialization.load_pem_public_key(FIXTURE["authority_public_pem"].encode())
assert isinstance(AUTHORITY, rsa.RSAPublicKey)
BOUND = key_policy.key_policy(AUTHORITY)  # PolicyAuthorize by the authority the fixture key was made under


def test_the_policy_digest_is_tpm2_policyauthorizes() -> None:
    key = tpm.parse_ecc_public(KEY)
    assert key.auth_policy == BOUND
    assert key.policy_bound


def test_a_certified_policy_bound_key_passes() -> None:
    key = attestation.verify_device_key(AK, KEY, CERTIFY, CERTIFY_SIG, BOUND)
    assert key.name == tpm.parse_certify(CERTIFY).name


def test_a_key_authorised_by_another_authority_is_refused() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(Refused, match="not PolicyAuthorize by the fleet's policy authority"):
        attestation.verify_device_key(AK, KEY, CERTIFY, CERTIFY_SIG, key_policy.key_policy(other))


def test_an_edited_key_is_not_the_certified_one() -> None:
    edited = bytearray(KEY)
    edited[-1] ^= 1  # another point: another name
    with pytest.raises(Refused, match=r"another object|not a point"):
        attestation.verify_device_key(AK, bytes(edited), CERTIFY, CERTIFY_SIG, BOUND)


def test_a_password_usable_key_is_refused() -> None:
    edited = bytearray(KEY)
    edited[9] |= 0x40  # TPMA_OBJECT userWithAuth (bit 6: the low byte of the big-endian attributes)
    with pytest.raises(Refused):
        attestation.verify_device_key(AK, bytes(edited), CERTIFY, CERTIFY_SIG, BOUND)
    assert not tpm.parse_ecc_public(bytes(edited)).policy_bound


def test_an_edited_certification_does_not_verify() -> None:
    edited = bytearray(CERTIFY)
    edited[-40] ^= 1
    with pytest.raises(Refused, match="signature does not verify"):
        attestation.verify_device_key(AK, KEY, bytes(edited), CERTIFY_SIG, BOUND)
