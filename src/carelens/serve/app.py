"""The FastAPI application: the bundle engine behind an HTTP API, an audit log and a web page.

:func:`create_app` wires the shared services (:mod:`carelens.serve.deps`), the error handlers
(:mod:`carelens.serve.errors`) and one router per area of the API (:mod:`carelens.serve.routers`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from carelens import __version__
from carelens.errors import CarelensError
from carelens.serve.deps import Services, in_thread
from carelens.serve.errors import install_error_handlers
from carelens.serve.limits import FORM_OVERHEAD, BodyLimit, InFlightLimit
from carelens.serve.metrics import RequestObserver
from carelens.serve.routers import chat, ecg, feedback, models, ops, page, triage
from carelens.serve.settings import ServeSettings
from carelens.symptoms import SymptomBundle

__all__ = ["create_app"]


def _load_symptoms(svc: Services) -> None:
    if svc.settings.symptoms_dir is None:
        return
    try:
        # a service that accepts only signed bundles: this one too, and no unsigned phrase cache beside it (the
        # phrases are then embedded at start, ~5 s)
        sb = SymptomBundle.load(svc.settings.symptoms_dir, trusted_keys=svc.registry.trusted)
        sb.parser.parse("warm up: fever and a cough")  # embeds the vocabulary once, at start
        svc.symptoms = sb
    except CarelensError as exc:
        svc.symptoms_error = str(exc)


log = logging.getLogger("carelens.serve")


async def _sync_workers(svc: Services) -> None:
    """With several workers: every ``worker_sync_s``, publish this worker's counts and follow admin reloads."""
    while True:
        await asyncio.sleep(svc.settings.worker_sync_s)
        try:
            await in_thread(svc.sync_workers)
        except Exception:  # a database hiccup must not end the loop; the next tick tries again
            log.exception("worker sync failed")


async def _settle_heap(svc: Services) -> None:
    """After a reload thawed the heap: freeze it again once the retired models are out of use (Services.settle_heap)."""
    while True:
        await asyncio.sleep(5.0)
        if svc.thawed_at is not None:
            await in_thread(svc.settle_heap)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The service. Raises ConfigError at once for settings it must not run with (a missing keys file)."""
    svc = Services.from_settings(settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if svc.settings.retention_days:
            await in_thread(svc.log.prune, svc.settings.retention_days)
        if svc.settings.workers > 1:
            svc.models_generation = await in_thread(svc.log.counter, "models")  # this start's load is current
        await in_thread(svc.registry.load)
        await in_thread(_load_symptoms, svc)
        await in_thread(svc.freeze_heap)
        settle = asyncio.create_task(_settle_heap(svc))
        sync = asyncio.create_task(_sync_workers(svc)) if svc.settings.workers > 1 else None
        yield
        settle.cancel()
        if sync is not None:
            sync.cancel()
        gc.unfreeze()  # collectable again (an app in a test, a process that goes on)

    app = FastAPI(title="carelens", version=__version__, lifespan=lifespan,
                  description="Triage assessments from images and symptoms. Not a diagnosis.",
                  form_limits={"max_files": 1, "max_fields": 8, "max_part_size": 64 * 1024})  # one image per request
    app.state.services = svc
    install_error_handlers(app)

    app.add_middleware(RequestObserver, metrics=svc.metrics)
    app.add_middleware(BodyLimit, max_bytes=svc.settings.max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(InFlightLimit, limit=svc.settings.max_in_flight)  # outermost: refuses before reading a byte
    hosts = [h.strip() for h in svc.settings.trusted_hosts.split(",") if h.strip()]
    if hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    origins = [o.strip() for o in svc.settings.cors_origins.split(",") if o.strip()]
    if origins:  # off by default: only the named sites' pages may call the API with the user's browser
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type", "X-Request-ID"])

    for r in (ops.router, models.router, triage.router, chat.router, ecg.router, feedback.router, page.router):
        app.include_router(r)
    return app
