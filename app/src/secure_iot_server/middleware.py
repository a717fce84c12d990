"""Pure-ASGI guard: reject request bodies over a byte limit with 413 before the app sees them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimitMiddleware:
    """Checks Content-Length, then counts streamed bytes; the (bounded) body is buffered and replayed."""

    def __init__(self, app: ASGIApp, max_body: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body = max_body
        # Exact paths allowed a larger bound (a manufacturing manifest): an operator's endpoint, so only for a
        # request whose TLS handshake presented a client certificate; an anonymous one gets the default.
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        certified = bool(scope.get("extensions", {}).get("tls", {}).get("client_cert_der"))
        limit = self.per_path.get(scope["path"], self.max_body) if certified else self.max_body
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "invalid Content-Length header")
                    return
                if declared > limit:
                    await _reject(send, 413, f"request body exceeds {limit} bytes")
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reject(send, 413, f"request body exceeds {limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
