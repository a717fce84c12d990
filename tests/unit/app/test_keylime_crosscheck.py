"""Keylime's quote checking (keylime 7.14, keylime.tpm.tpm_util.checkquote) and the fleet server's give the
same verdict on a real swtpm quote and on attacked copies of it (ADR 0010)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from secure_iot_server import attestation, tpm

CAPTURED = json.loads((Path(__file__).parents[2] / "fixtures" / "tpm" / "quote.json").read_text())
AK = bytes.fromhex(CAPTURED["ak_tpm2b_public"])
QUOTE = bytes.fromhex(CAPTURED["quote_tpms_attest"])
SIGNATURE = bytes.fromhex(CAPTURED["quote_tpmt_signature"])
PCRS = bytes.fromhex(CAPTURED["quote_pcrs_tpm2_tools"])
NONCE = bytes.fromhex(CAPTURED["nonce"])


def flipped(data: bytes, at: int = -1) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


def keylime_verdict(quote: bytes, signature: bytes, nonce: bytes) -> bool:
    logging.getLogger("keylime").setLevel(logging.CRITICAL)  # its config warnings: no /etc/keylime here
    from keylime.tpm import tpm_util

    pem = tpm.parse_public(AK).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        tpm_util.checkquote(pem, nonce, signature, quote, PCRS, "sha256")
    except Exception:  # Keylime signals every refusal with a bare Exception or a ValueError
        return False
    return True


def server_verdict(quote: bytes, signature: bytes, nonce: bytes) -> bool:
    try:
        checked = attestation.verify_quote_signature(tpm.parse_public(AK), quote, signature)
        attestation.verify_nonce(checked, nonce, expires_at=2.0, now=1.0)
    except attestation.Refused:
        return False
    return True


CASES: dict[str, tuple[Callable[[], tuple[bytes, bytes, bytes]], bool]] = {
    "genuine": (lambda: (QUOTE, SIGNATURE, NONCE), True),
    "quote edited (PCR digest byte)": (lambda: (flipped(QUOTE), SIGNATURE, NONCE), False),
    "signature edited": (lambda: (QUOTE, flipped(SIGNATURE), NONCE), False),
    "replayed with another nonce": (lambda: (QUOTE, SIGNATURE, bytes(8)), False),
}


@pytest.mark.parametrize("case", CASES)
def test_keylime_and_the_server_agree(case: str) -> None:
    make, expected = CASES[case]
    quote, signature, nonce = make()
    assert (keylime_verdict(quote, signature, nonce), server_verdict(quote, signature, nonce)) == (expected, expected)
