"""Who is calling: the client certificate the TLS layer verified, and the role its issuer gives it.

uvicorn verifies the client certificate against the CA bundle (ssl_cert_reqs=CERT_OPTIONAL:
registration must stay reachable without one) but does not pass it to the app, so
PeerCertH11Protocol puts the DER into the ASGI scope as the `tls` extension; the app then
decides the role by issuer: the operator CA makes an operator, the fleet CA a device.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from uvicorn.protocols.http.h11_impl import H11Protocol

OPERATOR, DEVICE = "operator", "device"


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the verified client certificate in scope["extensions"]["tls"]."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
        inner = self.app

        async def with_peer(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_der": der}
            await inner(scope, receive, send)

        self.app = with_peer


def load_certificate(data: bytes, *, der: bool = False) -> x509.Certificate:
    """An X.509 certificate from bytes a peer sent (PEM, or DER): a ValueError for anything that is not one,
    also for a version field other than v1 and v3 (cryptography's InvalidVersion is no ValueError)."""
    try:
        return x509.load_der_x509_certificate(data) if der else x509.load_pem_x509_certificate(data)
    except x509.InvalidVersion as exc:
        raise ValueError(f"not an X.509 v1 or v3 certificate ({exc})") from None


def peer_certificate(scope: Any) -> x509.Certificate | None:
    der = scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
    return load_certificate(der, der=True) if der else None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def role_of(cert: x509.Certificate, operator_cas: list[x509.Certificate], fleet_ca: x509.Certificate | None) -> str:
    if any(issued_by(cert, ca) for ca in operator_cas):
        return OPERATOR
    if fleet_ca is not None and issued_by(cert, fleet_ca):
        return DEVICE
    return ""
