"""The server's half of the TPM-bound device key (step 9) on a real swtpm key, certification and AK."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from secure_iot_server import attestation, tpm
from secure_iot_server.attestation import Refused
from secure_iot_server.reference_values import Golden

FIXTURE = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "tpm" / "device-key.json").read_text())
KEY = bytes.fromhex(FIXTURE["key_public"])
CERTIFY = bytes.fromhex(FIXTURE["certify"])
CERTIFY_SIG = bytes.fromhex(FIXTURE["certify_signature"])
AK = tpm.parse_public(bytes.fromhex(FIXTURE["ak_public"]))
# the boot the fixture key was bound to: PCR 9 extended once with sha256("a"), PCR 8 untouched
BOUND_BUILD = Golden("00" * 32, "test", 1, ((9, hashlib.sha256(b"a").hexdigest()),))


def test_the_policy_digest_is_tpm2_createpolicys() -> None:
    key = tpm.parse_ecc_public(KEY)
    assert key.auth_policy == attestation.expected_key_policy(BOUND_BUILD)
    assert key.policy_bound


def test_a_certified_policy_bound_key_passes() -> None:
    key = attestation.verify_device_key(AK, KEY, CERTIFY, CERTIFY_SIG, BOUND_BUILD)
    assert key.name == tpm.parse_certify(CERTIFY).name


def test_a_key_bound_to_another_boot_is_refused() -> None:
    other = Golden("00" * 32, "test", 1, ((9, hashlib.sha256(b"b").hexdigest()),))
    with pytest.raises(Refused, match="policy is not PolicyPCR"):
        attestation.verify_device_key(AK, KEY, CERTIFY, CERTIFY_SIG, other)


def test_an_edited_key_is_not_the_certified_one() -> None:
    edited = bytearray(KEY)
    edited[-1] ^= 1  # another point: another name
    with pytest.raises(Refused, match=r"another object|not a point"):
        attestation.verify_device_key(AK, bytes(edited), CERTIFY, CERTIFY_SIG, BOUND_BUILD)


def test_a_password_usable_key_is_refused() -> None:
    edited = bytearray(KEY)
    edited[9] |= 0x40  # TPMA_OBJECT userWithAuth (bit 6: the low byte of the big-endian attributes)
    with pytest.raises(Refused):
        attestation.verify_device_key(AK, bytes(edited), CERTIFY, CERTIFY_SIG, BOUND_BUILD)
    assert not tpm.parse_ecc_public(bytes(edited)).policy_bound


def test_an_edited_certification_does_not_verify() -> None:
    edited = bytearray(CERTIFY)
    edited[-40] ^= 1
    with pytest.raises(Refused, match="signature does not verify"):
        attestation.verify_device_key(AK, KEY, bytes(edited), CERTIFY_SIG, BOUND_BUILD)
