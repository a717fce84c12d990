"""The server's TPM parsing and verify_* steps on a real swtpm quote (tests/fixtures/tpm) and edits of it."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from secure_iot_server import attestation, tpm
from secure_iot_server.attestation import Refused
from secure_iot_server.reference_values import Golden
from secure_iot_server.registration import Trust
from secure_iot_server.trust import TrustError, model_minimums

from tests.support.identities import ca

CAPTURED = json.loads((Path(__file__).parents[2] / "fixtures" / "tpm" / "quote.json").read_text())
AK = bytes.fromhex(CAPTURED["ak_tpm2b_public"])
QUOTE = bytes.fromhex(CAPTURED["quote_tpms_attest"])
SIGNATURE = bytes.fromhex(CAPTURED["quote_tpmt_signature"])
NONCE = bytes.fromhex(CAPTURED["nonce"])
ABC = hashlib.sha256(b"abc").hexdigest()
AUTHORITY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def test_ak_public_area_name_and_attributes() -> None:
    ak = tpm.parse_public(AK)
    assert ak.name[:2] == b"\x00\x0b" and len(ak.name) == 34
    assert ak.is_attestation_key
    with pytest.raises(tpm.TpmFormatError, match="trailing"):
        tpm.parse_public(AK + b"\0")


def test_genuine_quote_passes_signature_nonce_and_replay() -> None:
    quote = attestation.verify_quote_signature(tpm.parse_public(AK), QUOTE, SIGNATURE)
    assert quote.pcrs == attestation.BOOT_PCRS
    attestation.verify_nonce(quote, NONCE, expires_at=2.0, now=1.0)
    attestation.verify_pcr_digest(quote, [(9, ABC)])


def test_a_changed_byte_breaks_the_signature() -> None:
    edited = bytearray(QUOTE)
    edited[-1] ^= 1
    with pytest.raises(Refused) as refused:
        attestation.verify_quote_signature(tpm.parse_public(AK), bytes(edited), SIGNATURE)
    assert refused.value.step == "quote-signature"


def test_other_nonce_expired_challenge_and_edited_log_are_refused() -> None:
    quote = tpm.parse_quote(QUOTE)
    with pytest.raises(Refused, match="another nonce"):
        attestation.verify_nonce(quote, b"other", expires_at=2.0, now=1.0)
    with pytest.raises(Refused, match="expired"):
        attestation.verify_nonce(quote, NONCE, expires_at=1.0, now=2.0)
    with pytest.raises(Refused, match="not the replay"):
        attestation.verify_pcr_digest(quote, [(9, hashlib.sha256(b"abd").hexdigest())])
    with pytest.raises(Refused, match="not the replay"):
        attestation.verify_pcr_digest(quote, [(9, ABC), (8, ABC)])  # an extra event


def test_reference_values_and_security_version() -> None:
    build = Golden("f" * 64, "board-a", "1.1.0", 2, ((9, ABC),))
    assert attestation.verify_reference_values([(9, ABC)], [build], "board-a") is build
    with pytest.raises(Refused, match="match no signed firmware build"):
        attestation.verify_reference_values([(9, ABC), (9, ABC)], [build], "board-a")
    with pytest.raises(Refused, match="for model board-a; this device is enrolled as model board-b"):
        attestation.verify_reference_values([(9, ABC)], [build], "board-b")
    attestation.verify_security_version(build, 2)
    with pytest.raises(Refused, match="< minimum 3 for model board-a"):
        attestation.verify_security_version(build, 3)


def test_a_models_minimum_raises_the_fleets_floor_for_that_model_only(tmp_path: Path) -> None:
    trust = Trust([], [], *ca("fleet CA"), AUTHORITY, min_security_version=2)
    trust.model_minimums = {"board-a": 4}
    assert (trust.minimum_for("board-a"), trust.minimum_for("board-b")) == (4, 2)
    (tmp_path / "models.toml").write_text("[models.board-a]\nmin_security_version = 4\n")
    assert model_minimums(tmp_path / "models.toml") == {"board-a": 4}
    (tmp_path / "models.toml").write_text("[models.board-a]\nminimum = 4\n")
    with pytest.raises(TrustError, match="min_security_version"):
        model_minimums(tmp_path / "models.toml")


def test_kdfa_is_the_spec_counter_mode() -> None:
    key, bits = b"k" * 32, 384
    out = tpm.kdfa(key, b"STORAGE", b"u", b"v", bits)
    first = hmac.new(key, b"\0\0\0\1STORAGE\0uv" + bits.to_bytes(4, "big"), hashlib.sha256).digest()
    assert len(out) == 48 and out[:32] == first
