"""The FastAPI application: the bundle engine behind an HTTP API, an audit log and a web page.

:func:`create_app` wires the shared services (:mod:`carelens.serve.deps`), the error handlers
(:mod:`carelens.serve.errors`) and one router per area of the API (:mod:`carelens.serve.routers`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from carelens import __version__
from carelens.errors import CarelensError
from carelens.serve.deps import Services, in_thread
from carelens.serve.errors import install_error_handlers
from carelens.serve.routers import feedback, models, ops, page, triage
from carelens.serve.settings import ServeSettings
from carelens.symptoms import SymptomBundle

__all__ = ["create_app"]


def _load_symptoms(svc: Services) -> None:
    if svc.settings.symptoms_dir is None:
        return
    try:
        sb = SymptomBundle.load(svc.settings.symptoms_dir)
        sb.parser.parse("warm up: fever and a cough")  # embeds the vocabulary once, at start
        svc.symptoms = sb
    except CarelensError as exc:
        svc.symptoms_error = str(exc)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    svc = Services.from_settings(settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await in_thread(svc.registry.load)
        await in_thread(_load_symptoms, svc)
        yield

    app = FastAPI(title="carelens", version=__version__, lifespan=lifespan,
                  description="Triage assessments from images and symptoms. Not a diagnosis.")
    app.state.services = svc
    install_error_handlers(app)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t = time.perf_counter()
        response = await call_next(request)
        path = getattr(request.scope.get("route"), "path", "unmatched")
        svc.metrics.observe_request(request.method, path, response.status_code, time.perf_counter() - t)
        return response

    for r in (ops.router, models.router, triage.router, feedback.router, page.router):
        app.include_router(r)
    return app
