"""The fleet CA's CRL for the doors the fleet server does not guard (the OTA repository, the network edge):
fetched, verified, put in place.

The fleet server publishes its CRL at GET /attestation/crl (app/src/secure_iot_server/crl.py:
valid 300 s, rebuilt on every quarantine). ``refresh`` fetches it over TLS (the fleet server's
certificate checked against ``server_ca``), and writes it where a door reads it (PEM, atomically)
only if it is the fleet CA's (signature and issuer), current (thisUpdate not in the future,
nextUpdate not past) and not older than the copy in place (CRL number): a man in the middle, a
replayed old CRL or a stale one changes nothing, and the door keeps refusing on the CRL it has
until that one expires - then it refuses everyone (OpenSSL: CRL has expired).

``refreshing`` keeps a door's copy fresh: once before the door starts (a failure there stops it),
then every ``every`` seconds in a thread; a failed refresh keeps the copy in place and is reported,
so a door cut off from the fleet server refuses everyone once that copy expires. The freshness a
door gets is the refresh interval (60 s by default) plus the server's rebuild lag (none: a
quarantine rebuilds at the next request); the CRL's 300 s validity bounds it when refreshes fail.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.core import atomic
from tasks.core.errors import InputError

MAX_BYTES = 1 << 20  # a fleet's CRL: ~40 bytes per revoked device


@dataclass(frozen=True)
class Refreshed:
    number: int
    revoked: int
    next_update: datetime


def number_of(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        raise InputError("CRL: no CRL number (the fleet server always sets one)") from None


def verified(der: bytes, fleet_ca: x509.Certificate, current: Path | None = None) -> x509.CertificateRevocationList:
    """The CRL, if the fleet CA signed it, it is current, and not older than ``current`` (PEM) if given."""
    try:  # cryptography parses the issuer lazily, and refuses an unknown version with InvalidVersion (no ValueError)
        crl = x509.load_der_x509_crl(der)
        signed = crl.issuer == fleet_ca.subject and crl.is_signature_valid(fleet_ca.public_key())  # type: ignore[arg-type]
    except (ValueError, x509.InvalidVersion) as exc:
        raise InputError(f"CRL: not a DER X.509 CRL ({exc})") from None
    if not signed:
        raise InputError("CRL: not signed by the fleet CA")
    now = datetime.now(UTC)
    if crl.next_update_utc is None or not crl.last_update_utc <= now < crl.next_update_utc:
        raise InputError(f"CRL: not current (thisUpdate {crl.last_update_utc}, nextUpdate {crl.next_update_utc})")
    if current is not None and current.exists():
        before = x509.load_pem_x509_crl(current.read_bytes())
        if number_of(crl) < number_of(before):
            raise InputError(f"CRL: number {number_of(crl)} is older than the one in place ({number_of(before)})")
    return crl


def refresh(url: str, server_ca: Path, fleet_ca: Path, dest: Path, *, timeout: float = 10.0) -> Refreshed:
    """Fetch the fleet server's CRL, verify it, and replace ``dest`` (PEM) with it."""
    if not url.startswith("https://"):
        raise InputError(f"{url}: the fleet server is reached over https only")
    pool = urllib3.PoolManager(ca_certs=str(server_ca), cert_reqs="CERT_REQUIRED", retries=False)
    try:
        response = pool.request("GET", f"{url}/attestation/crl", preload_content=False, timeout=timeout)
        der = response.read(MAX_BYTES + 1)
        response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise InputError(f"{url}/attestation/crl: {exc}") from None
    if response.status != 200:
        raise InputError(f"{url}/attestation/crl: HTTP {response.status}")
    if len(der) > MAX_BYTES:
        raise InputError(f"CRL: larger than {MAX_BYTES} bytes")
    crl = verified(der, x509.load_pem_x509_certificate(fleet_ca.read_bytes()), dest)
    atomic.write_bytes(dest, crl.public_bytes(serialization.Encoding.PEM))
    assert crl.next_update_utc is not None  # checked by verified()
    return Refreshed(number_of(crl), len(list(crl)), crl.next_update_utc)


@contextlib.contextmanager
def refreshing(url: str, server_ca: Path, fleet_ca: Path, dest: Path, *, every: float = 60.0) -> Iterator[list[str]]:
    """``dest`` refreshed now and then every ``every`` seconds until the block ends; yields the list of
    failed refreshes (one line each), which the caller records."""
    refresh(url, server_ca, fleet_ca, dest)
    failures: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                refresh(url, server_ca, fleet_ca, dest)
            except InputError as exc:
                failures.append(str(exc))

    thread = threading.Thread(target=loop, name="crl-refresh", daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(timeout=30)
