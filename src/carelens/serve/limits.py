"""Limits enforced before any work: the request body is counted while it streams in, so an oversized upload
is refused with 413 before the API key is checked and before anything is spooled to memory or disk."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carelens.serve.errors import BodyTooLarge, error_response

__all__ = ["FORM_OVERHEAD", "BodyLimit"]

FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers, symptom text and facts beside the image


class BodyLimit:
    """Pure ASGI middleware: a declared Content-Length over ``max_bytes`` is refused at once; a body without
    one (chunked) is counted as it arrives and refused the moment it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await error_response(413, "too_large", BodyTooLarge(self.max_bytes).detail)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # FastAPI re-raises HTTP errors met while reading a form
            return message

        await self.app(scope, counted, send)
