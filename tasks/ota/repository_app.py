"""The ASGI app the mTLS repository server runs: the repository directory's files, GET/HEAD only.

uvicorn (the fleet server's ASGI server, already a dependency) imports it in its own process;
the directory comes from SECURE_IOT_OTA_REPOSITORY. Who may read is decided before a request
exists: the TLS handshake requires a client certificate the fleet CA issued (tasks/ota/serve.py).

Deliberately small, because a fleet's no-news checks are all requests for one 434-byte file: a
path is served only if it resolves to a regular file inside the directory (no ``..``, no symlink
out, no listing); small files are answered from memory, keyed by (inode, size, mtime) so a
re-signed timestamp is served the moment it is renamed into place; anything else is 404 (which
ngclient needs when it probes for the next root version) or 405.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("SECURE_IOT_OTA_REPOSITORY", ".")).resolve()
SMALL = 1 << 20  # metadata; bundles are read per request
CHUNK = 1 << 20
_cache: dict[str, tuple[tuple[int, int, int], bytes]] = {}

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def resolve(path: str) -> Path | None:
    """The file ``path`` names inside ROOT, or None (outside, missing, not a regular file)."""
    if "\x00" in path or "\\" in path:
        return None
    candidate = (ROOT / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(ROOT) or not candidate.is_file():
        return None
    return candidate


async def _status(send: Send, code: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["method"] not in ("GET", "HEAD"):
        await _status(send, 405, b"method not allowed\n")
        return
    found = resolve(scope["path"])
    if found is None:
        await _status(send, 404, b"not found\n")
        return
    info = found.stat()
    body = None
    if info.st_size <= SMALL:
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _cache.get(str(found))
        if cached is None or cached[0] != key:
            cached = (key, found.read_bytes())
            _cache[str(found)] = cached
        body = cached[1]
    length = len(body) if body is not None else info.st_size  # bundles are content-addressed, never rewritten
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(length).encode()),
        (b"connection", b"close"),  # one request per connection: each meets the CRL (repository_server.py)
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b""})
    elif body is not None:
        await send({"type": "http.response.body", "body": body})
    else:
        with found.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
