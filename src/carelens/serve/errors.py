"""Errors translated once, here: every failure becomes ``{"error": {"type", "message"}}`` with its status.

Domain errors carry their kind as their class (:mod:`carelens.errors`); :data:`DOMAIN_ERRORS` maps each
class to a status code and an error type, most specific first. Nothing here reads a message's text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from carelens.errors import (
    BundleError,
    CarelensError,
    FactsError,
    ImageReadError,
    ImageTooLargeError,
    MissingExtraError,
    NotAnImageError,
    NothingRecognisedError,
)
from carelens.serve.registry import Overloaded, ReloadInProgress
from carelens.serve.schemas import ErrorResponse

__all__ = ["DOMAIN_ERRORS", "ERROR_RESPONSES", "ApiError", "BodyTooLarge", "error_response", "install_error_handlers"]

log = logging.getLogger("carelens.serve")

IMAGE_FORMATS_HINT = "send a JPEG, PNG, BMP, TIFF or WebP image"

RETRY_SOON = {"Retry-After": "1"}

# (class, status, type, hint appended to the message, headers); the first matching class wins
DOMAIN_ERRORS: tuple[tuple[type[CarelensError], int, str, str, dict[str, str] | None], ...] = (
    (ImageTooLargeError, 413, "too_many_pixels", "", None),
    (NotAnImageError, 415, "not_an_image", IMAGE_FORMATS_HINT, None),
    (ImageReadError, 422, "unreadable_image", "", None),
    (FactsError, 422, "invalid_facts", "", None),
    (NothingRecognisedError, 422, "no_symptom_recognised", "", None),
    (Overloaded, 503, "overloaded", "", RETRY_SOON),
    (ReloadInProgress, 409, "reload_in_progress", "", None),
    (BundleError, 503, "BundleError", "", None),
    (MissingExtraError, 501, "not_installed", "", None),
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 501, 503)
}


class ApiError(Exception):
    """An error that only exists at the HTTP edge (no key, unknown model, nothing sent, overloaded ...)."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit, noticed while it streams in (before auth, before anything is spooled)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit:,}-byte limit")


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None,
                   request_id: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if request_id:
        body["request_id"] = request_id
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _domain(exc: CarelensError) -> JSONResponse:
    for cls, status, kind, hint, headers in DOMAIN_ERRORS:
        if isinstance(exc, cls):
            return error_response(status, kind, f"{exc}; {hint}" if hint else str(exc), headers)
    return error_response(422, type(exc).__name__, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.kind, exc.message, exc.headers)

    @app.exception_handler(CarelensError)
    async def _domain_error(_: Request, exc: CarelensError) -> JSONResponse:
        return _domain(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(422, "validation_error", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "too_large" if isinstance(exc, BodyTooLarge) else "http_error"
        return error_response(exc.status_code, kind, str(exc.detail), dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        log.error("unexpected error in %s %s (request %s)", request.method, request.url.path, rid, exc_info=exc)
        return error_response(500, "internal_error", "the server failed to handle this request; it has been logged "
                              "under the request id", {"X-Request-ID": rid} if rid else None, rid)
