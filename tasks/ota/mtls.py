"""The device's side of the mTLS repository: its fleet certificate, and a python-tuf fetcher that presents it.

The certificate and key are what registration gave the device (#14: issued by the fleet CA); the
server is trusted only if its certificate chains to ``server_ca``. A refused handshake (no or a
foreign client certificate, or a server the device does not trust) is a download error for
ngclient, so the update client reports it like any other failed download and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import urllib3
from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

CHUNK = 400_000


@dataclass(frozen=True)
class DeviceTls:
    cert: Path
    key: Path
    server_ca: Path


class MtlsFetcher(FetcherInterface):
    """GETs over one keep-alive HTTPS pool with the device's client certificate."""

    def __init__(self, tls: DeviceTls, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._pool = urllib3.PoolManager(
            cert_file=str(tls.cert),
            key_file=str(tls.key),
            ca_certs=str(tls.server_ca),
            cert_reqs="CERT_REQUIRED",
            retries=urllib3.Retry(0, redirect=False),
        )

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self._pool.request("GET", url, preload_content=False, timeout=urllib3.Timeout(self._timeout))
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.TimeoutError):
                raise exceptions.SlowRetrievalError from exc
            raise exceptions.DownloadError(f"{url}: {exc.reason}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise exceptions.DownloadError(f"{url}: {exc}") from exc
        if response.status >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(f"HTTP error occurred: {response.status}", response.status)
        return self._chunks(response)

    @staticmethod
    def _chunks(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from response.stream(CHUNK)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise exceptions.SlowRetrievalError from exc
        finally:
            response.release_conn()


def serves(base_url: str, tls: DeviceTls, *, timeout: float = 5.0) -> bool:
    """Whether the repository at ``base_url`` serves its timestamp to ``tls``'s identity: one GET on a
    connection of its own; any failure (a refused handshake, a closed connection) is False."""
    pool = urllib3.PoolManager(
        cert_file=str(tls.cert), key_file=str(tls.key), ca_certs=str(tls.server_ca), cert_reqs="CERT_REQUIRED"
    )
    try:
        got = pool.request("GET", f"{base_url}/metadata/timestamp.json", retries=False, timeout=timeout)
    except urllib3.exceptions.HTTPError:
        return False
    return got.status == 200
