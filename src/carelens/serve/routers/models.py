"""The image models: what is loaded, and one image assessed by a named model."""

import dataclasses
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from carelens.serve.auth import Principal
from carelens.serve.deps import ServicesDep, in_thread, principal, resolve_model
from carelens.serve.errors import ERROR_RESPONSES
from carelens.serve.images import assess_image, read_upload
from carelens.serve.registry import ModelEntry
from carelens.serve.schemas import ModelInfo, PredictResponse

router = APIRouter(prefix="/v1/models", tags=["models"])


def _info(name: str, entry: ModelEntry) -> ModelInfo:
    b = entry.engine.bundle
    s = b.spec
    tm = s.test_metrics
    return ModelInfo(
        name=name, version=s.version, task=s.task, modality=b.labels.modality, species=list(b.labels.species),
        care_provider=b.labels.provider,
        classes=[{"id": c.id, "name": c.name, "group": c.group, "triage": c.triage} for c in b.labels.classes],
        image_size=b.preprocess.image_size,
        metrics={k: tm.get(k) for k in ("balanced_accuracy", "accuracy", "macro_auc") if k in tm}
        | {k: s.calibration.get(k) for k in ("ece", "coverage", "mean_set_size") if k in s.calibration},
        intended_use=s.intended_use, facts=s.facts.schema_ if s.facts else None,
        decision=dataclasses.asdict(entry.engine.policy))


@router.get("", response_model=list[ModelInfo], responses=ERROR_RESPONSES)
async def list_models(svc: ServicesDep, _: Annotated[Principal, Depends(principal)]) -> list[ModelInfo]:
    return [_info(name, e) for name, e in svc.registry.models.items()]


@router.post("/{name}/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
async def predict(request: Request, name: str, svc: ServicesDep, who: Annotated[Principal, Depends(principal)],
                  _: Annotated[ModelEntry, Depends(resolve_model)],
                  file: Annotated[UploadFile, File(description="the image")],
                  heatmap: Annotated[bool, Query(description="add a heatmap overlay")] = False,
                  species: Annotated[str | None, Query(description="the patient's species")] = None) -> PredictResponse:
    t = time.perf_counter()
    up = await read_upload(file, svc)
    a, png, mname, version = await assess_image(svc, name, up.image, heatmap, request=request, species=species)
    ms = (time.perf_counter() - t) * 1000
    pid = await in_thread(lambda: svc.log.record(
        kind="predict", model_name=mname, model_version=version, assessment=a.model_dump(mode="json"),
        latency_ms=ms, input_sha256=up.sha256, size=up.size, api_key_id=who.key_id))
    return PredictResponse(id=pid, assessment=a, heatmap_png=png, latency_ms=round(ms, 2))
