"""Limits enforced before any work, at the door of the application.

The request body is counted while it streams in, so an oversized upload is refused with 413 before the API
key is checked and before anything is spooled to memory or disk. The requests in progress are counted too:
beyond the limit a request is refused at once (503, Retry-After) instead of joining a backlog that would
make every answer late."""

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
        seen, tripped, answered = 0, False, False
        too_large = error_response(413, "too_large", BodyTooLarge(self.max_bytes).detail)

        async def counted() -> Message:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    tripped = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if not tripped:
                await send(message)
            elif not answered and message["type"] == "http.response.start":
                answered = True  # whatever the app made of the broken-off body (a parse error), the answer is 413
                await too_large(scope, receive, send)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            if not answered:
                await too_large(scope, receive, send)


class InFlightLimit:
    """Pure ASGI middleware: at most ``limit`` requests in progress; the next ones get 503 with Retry-After at
    once. Health, readiness and metrics are always answered (an overloaded service must still say so), and so
    is an admin's reload (a deploy must not wait for the load to fall; reloads run one at a time anyway)."""

    EXEMPT = ("/health", "/ready", "/metrics", "/v1/admin/reload")

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await error_response(503, "overloaded", f"the service is handling {self.limit} requests; retry in a moment",
                                 {"Retry-After": "1"})(scope, receive, send)
            return
        self.in_flight += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
