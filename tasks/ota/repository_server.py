"""The mTLS repository server's process: uvicorn over repository_app, every device certificate checked
against the fleet CA's CRL as it is now.

    python -m tasks.ota.repository_server CERT KEY CLIENT_CA CRL

uvicorn's command line has no CRL option, so this process builds uvicorn's Config itself with an
``ssl_context_factory``: the listening context requires a client certificate from the fleet CA
with ``VERIFY_CRL_CHECK_LEAF``, and its SNI callback (called in every handshake, with or without
a server name) hands the handshake a context loaded with the CRL file as it is at that moment
(re-read when the file changes: tasks/device/revocations.py replaces it atomically). So:

- a revoked (quarantined) device fails the handshake from the first connection after the CRL that
  lists it is in place: it sees no metadata and no bundle. Every request is a connection of its own
  and a full TLS 1.3 handshake (no session tickets; repository_app answers ``connection: close``),
  so neither a resumed session nor a held-open connection outlives a revocation;
- only the CRL in the file is loaded (a certificate placed beside it is refused, never a trust
  anchor);
- a CRL past its nextUpdate fails every handshake (OpenSSL: CRL has expired), and so does a missing
  or foreign one (unable to get certificate CRL): a repository that stops hearing from the fleet
  server stops serving instead of serving on stale knowledge.

The first line uvicorn logs names the port (tasks/ota/serve.py waits for it).
"""

from __future__ import annotations

import os
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def crl_only(path: Path) -> str:
    """The CRL in ``path`` as PEM, and nothing else: a certificate in the file would become a trust
    anchor for client certificates if the file were loaded as it is."""
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE" in data or data.count(b"-----BEGIN X509 CRL") != 1:
        raise ValueError("expected exactly one X509 CRL and no certificate")
    return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.PEM).decode()


class CrlContexts:
    """One server context per version of the CRL file (keyed by inode, size and mtime)."""

    def __init__(self, make: Callable[[], ssl.SSLContext], crl: Path) -> None:
        self._make, self._crl = make, crl
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        try:
            info = self._crl.stat()
            key: tuple[int, int, int] | None = (info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            key = None  # no CRL: a context without one, which refuses every client certificate
        with self._lock:
            if self._context is None or key != self._key:
                self._context, self._key = self._load(key is not None), key
            return self._context

    def _load(self, with_crl: bool) -> ssl.SSLContext:
        context = self._make()
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        # Every request is a full handshake, so every request meets the CRL as it is now: TLS 1.3
        # only (Python cannot switch off TLS 1.2's session-ID cache), no session tickets (a resumed
        # session skips certificate verification), and repository_app closes each connection.
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.num_tickets = 0
        if with_crl:
            try:
                with tempfile.NamedTemporaryFile("w", suffix=".crl.pem") as only:
                    only.write(crl_only(self._crl))  # cadata= would load certificates only, never a CRL
                    only.flush()
                    context.load_verify_locations(cafile=only.name)
            except (OSError, ValueError, ssl.SSLError) as exc:
                print(f"repository: CRL {self._crl} unusable ({exc}); every handshake fails", flush=True)
        return context

    def switch(self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
        connection.context = self.context()


def config(cert: Path, key: Path, client_ca: Path, crl: Path) -> uvicorn.Config:
    def factory(_config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        contexts = CrlContexts(default, crl)
        listening = contexts.context()
        listening.sni_callback = contexts.switch
        return listening

    return uvicorn.Config(
        "tasks.ota.repository_app:app",
        host="127.0.0.1",
        port=0,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_ca_certs=str(client_ca),
        ssl_cert_reqs=int(ssl.CERT_REQUIRED),
        ssl_context_factory=factory,
        access_log=False,
        log_level="info",
    )


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m tasks.ota.repository_server CERT KEY CLIENT_CA CRL", file=sys.stderr)
        return 2
    if "SECURE_IOT_OTA_REPOSITORY" not in os.environ:
        print("repository: SECURE_IOT_OTA_REPOSITORY is not set", file=sys.stderr)
        return 2
    cert, key, client_ca, crl = map(Path, argv)
    uvicorn.Server(config(cert, key, client_ca, crl)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
