"""The fleet CA's certificate revocation list: how a quarantine reaches the doors the server does not guard.

GET /attestation/crl answers a DER X.509 v2 CRL signed by the fleet CA: every revoked device
certificate (a quarantine revokes), thisUpdate when it was built, nextUpdate CRL_SECONDS later,
and a CRL number that only rises. The OTA repository and the network edge check device
certificates against it (tasks/device/revocations.py fetches and verifies it); a copy past nextUpdate is
refused by OpenSSL there, so a door that stops hearing from the server stops admitting devices.

Unauthenticated (a CRL is public and signed) and cheap: it is built when the revocation list
changed or a third of its validity has passed; every other request is answered from memory after
reading one row (the list's revision), however many certificates are revoked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .enrolment_store import EnrolmentStore
from .registration import Trust

CRL_MEDIA_TYPE = "application/pkix-crl"  # RFC 2585
CRL_SECONDS = 300  # how long a published CRL is valid: the most a door can lag behind a quarantine
REBUILD_AFTER = CRL_SECONDS / 3
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class _Built:
    marker: int  # the revocation list's revision (EnrolmentStore.revocation_marker)
    at: float
    der: bytes


class Publisher:
    """The current CRL, rebuilt only when needed (one lock: concurrent requests build it once)."""

    def __init__(self, store: EnrolmentStore, trust: Trust) -> None:
        self._store, self._trust = store, trust
        self._lock = threading.Lock()
        self._built: _Built | None = None

    def current(self) -> bytes:
        marker = self._store.revocation_marker()
        with self._lock:
            built = self._built
            if built is None or built.marker != marker or time.time() - built.at > REBUILD_AFTER:
                built = self._built = _Built(marker, time.time(), self._build())
            return built.der

    def _build(self) -> bytes:
        now = datetime.now(UTC).replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._trust.fleet_ca_cert.subject)
            .last_update(now - CLOCK_SKEW)  # a door whose clock is a little behind still takes it
            .next_update(now + timedelta(seconds=CRL_SECONDS))
            .add_extension(x509.CRLNumber(time.time_ns() // 1_000_000), critical=False)
            # RFC 5280 5.2.1; strongSwan finds a CA's CRL only by it (the network edge reads this CRL too)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._trust.fleet_ca_key.public_key()),
                critical=False,
            )
        )
        for row in self._store.revocations():
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(str(row["certificate_serial"]), 16))
                .revocation_date(datetime.fromisoformat(str(row["revoked_at"])))
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(self._trust.fleet_ca_key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)
