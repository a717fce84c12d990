"""Check-in nonces without server state: GET /attestation/nonce writes nothing.

A session is ``<issue time in ms, hex>.<16 random bytes, base64url>`` and its nonce is
HMAC-SHA256(key, DOMAIN || session), the key derived from the fleet CA's private key (every server
sharing the trust directory answers the nonces of the others, across restarts). Only the server
can name the nonce of a session, so a device cannot quote a nonce before it was issued, and the
issue time it carries is authenticated: expired after CHALLENGE_SECONDS.

Single use is enforced where the nonce is consumed: by a check-in that has already proved it is the
device's own (its certificate and a quote signed by its enrolled AK over this nonce), which records
the session until it expires (EnrolmentStore.consume_nonce). An unauthenticated caller can fetch
nonces for ever and the database never hears of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .attestation import Refused
from .registration import CHALLENGE_SECONDS

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

DOMAIN = b"secure-iot checkin nonce v1\0"
CLOCK_SKEW_S = 5.0  # a session issued by a server whose clock is a little ahead is still taken


@dataclass(frozen=True)
class Redeemed:
    session: str
    nonce: bytes
    expires_at: float


class CheckinNonces:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_fleet(cls, fleet_ca_key: ec.EllipticCurvePrivateKey) -> CheckinNonces:
        secret = fleet_ca_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(HKDF(hashes.SHA256(), 32, salt=None, info=b"secure-iot checkin nonce key v1").derive(secret))

    def _nonce(self, session: str) -> bytes:
        return hmac.new(self._key, DOMAIN + session.encode(), hashlib.sha256).digest()

    def issue(self, now: float) -> dict[str, str]:
        session = f"{int(now * 1000):x}.{secrets.token_urlsafe(16)}"
        return {"session": session, "nonce": self._nonce(session).hex()}

    def redeem(self, session: str, now: float) -> Redeemed:
        """The nonce of a session this server issued and that has not expired; Refused("nonce") otherwise
        (single use is the caller's: EnrolmentStore.consume_nonce once the device is authenticated)."""
        issued_hex, _, random_part = session.partition(".")
        try:
            issued = int(issued_hex, 16) / 1000 if 0 < len(issued_hex) <= 12 else -1.0
            valid = issued >= 0 and len(base64.urlsafe_b64decode(random_part + "==")) == 16
        except (ValueError, binascii.Error):
            valid = False
        if not valid:
            raise Refused("nonce", "not a check-in session this server issued")
        if not now - CHALLENGE_SECONDS <= issued <= now + CLOCK_SKEW_S:
            raise Refused("nonce", "the check-in nonce expired (or was issued in the future)")
        return Redeemed(session, self._nonce(session), issued + CHALLENGE_SECONDS)
