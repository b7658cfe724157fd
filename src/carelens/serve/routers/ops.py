"""Operations: liveness, readiness, Prometheus metrics and the admin reload."""

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from carelens.serve.auth import Principal
from carelens.serve.deps import ServicesDep, admin, in_thread
from carelens.serve.errors import ERROR_RESPONSES, error_response
from carelens.serve.schemas import ErrorResponse

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", responses={503: {"model": ErrorResponse}})
async def ready(svc: ServicesDep) -> Any:
    reg = svc.registry
    if not reg.ready:
        detail = "; ".join(f"{k}: {v}" for k, v in reg.errors.items()) or "no bundles in the models folder"
        return error_response(503, "not_ready", detail)
    return {"status": "ready", "models": {n: e.engine.bundle.version for n, e in reg.models.items()},
            "failed": reg.errors, "symptoms": svc.symptoms is not None, "worker": os.getpid()}


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus(svc: ServicesDep) -> str:
    return await in_thread(svc.metrics_text)


@router.post("/v1/admin/reload", responses=ERROR_RESPONSES)
async def reload(svc: ServicesDep, _: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
    return await in_thread(svc.reload)
