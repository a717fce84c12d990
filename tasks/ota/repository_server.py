"""The mTLS repository server's process: uvicorn over repository_app, every device certificate checked
against the fleet CA's CRL as it is now.

    python -m tasks.ota.repository_server CERT KEY CLIENT_CA CRL

uvicorn's command line has no CRL option, so this process builds uvicorn's Config itself with an
``ssl_context_factory``: the listening context requires a client certificate from the fleet CA
with ``VERIFY_CRL_CHECK_LEAF``, and its SNI callback (called in every handshake, with or without
a server name) hands the handshake a context loaded with the CRL file as it is at that moment
(re-read when the file changes: tasks/device/revocations.py replaces it atomically). So:

- a revoked (quarantined) device fails the handshake from the first connection after the CRL that
  lists it is in place: it sees no metadata and no bundle;
- a CRL past its nextUpdate fails every handshake (OpenSSL: CRL has expired), and so does a missing
  or foreign one (unable to get certificate CRL): a repository that stops hearing from the fleet
  server stops serving instead of serving on stale knowledge.

The first line uvicorn logs names the port (tasks/ota/serve.py waits for it).
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn


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
        if with_crl:
            try:
                context.load_verify_locations(cafile=str(self._crl))
            except (OSError, ssl.SSLError) as exc:
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
