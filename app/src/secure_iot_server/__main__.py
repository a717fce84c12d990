"""`python -m secure_iot_server` / `secure-iot-server`: serve the API with uvicorn.

With SECURE_IOT_TLS_CERT/KEY and SECURE_IOT_CLIENT_CA (operator and fleet CAs) it serves mTLS:
client certificates are verified when presented and reach the app for the role check. Without
them it serves plain HTTP, where no request can carry a certificate, so every operator endpoint
answers 401: only health and registration work.
"""

from __future__ import annotations

import ssl
import sys

import uvicorn

from .api import create_app
from .config import Settings
from .database import StorageError
from .identity import PeerCertH11Protocol
from .trust import TrustError


def main() -> None:
    settings = Settings.from_env()
    try:
        app = create_app(settings)
    except (StorageError, TrustError) as exc:  # one line, non-zero: nothing is served
        sys.exit(f"secure-iot-server: {exc}")
    if settings.tls_cert is None:
        print("secure-iot-server: no SECURE_IOT_TLS_CERT, plain HTTP: operator endpoints unreachable", file=sys.stderr)
        uvicorn.run(app, host=settings.host, port=settings.port, server_header=False)
        return
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        server_header=False,
        http=PeerCertH11Protocol,
        ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key),
        ssl_ca_certs=str(settings.client_ca),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,  # registration is reachable without a certificate
    )


if __name__ == "__main__":
    main()
