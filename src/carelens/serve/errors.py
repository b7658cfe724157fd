"""Errors translated once, here: every failure becomes ``{"error": {"type", "message"}}`` with its status.

Domain errors carry their kind as their class (:mod:`carelens.errors`); :data:`DOMAIN_ERRORS` maps each
class to a status code and an error type, most specific first. Nothing here reads a message's text.
"""

from __future__ import annotations

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
    NotAnImageError,
    NothingRecognisedError,
)
from carelens.serve.schemas import ErrorResponse

__all__ = ["DOMAIN_ERRORS", "ERROR_RESPONSES", "ApiError", "error_response", "install_error_handlers"]

IMAGE_FORMATS_HINT = "send a JPEG, PNG, BMP, TIFF or WebP image"

# (class, status, type, hint appended to the message); the first matching class wins
DOMAIN_ERRORS: tuple[tuple[type[CarelensError], int, str, str], ...] = (
    (ImageTooLargeError, 413, "too_many_pixels", ""),
    (NotAnImageError, 415, "not_an_image", IMAGE_FORMATS_HINT),
    (ImageReadError, 422, "unreadable_image", ""),
    (FactsError, 422, "invalid_facts", ""),
    (NothingRecognisedError, 422, "no_symptom_recognised", ""),
    (BundleError, 503, "BundleError", ""),
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 415, 422, 503)
}


class ApiError(Exception):
    """An error that only exists at the HTTP edge (no key, unknown model, nothing sent ...)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _domain(exc: CarelensError) -> JSONResponse:
    for cls, status, kind, hint in DOMAIN_ERRORS:
        if isinstance(exc, cls):
            return error_response(status, kind, f"{exc}; {hint}" if hint else str(exc))
    return error_response(422, type(exc).__name__, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.kind, exc.message)

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
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "the server failed to handle this request; it has been logged")
