"""Triage: an image (with clinical facts) and/or symptoms in plain words -> one assessment; the vocabulary."""

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from carelens.errors import FactsError
from carelens.policy import Assessment
from carelens.serve.auth import Principal
from carelens.serve.deps import ServicesDep, in_thread, principal, symptom_bundle
from carelens.serve.errors import ERROR_RESPONSES, ApiError
from carelens.serve.images import assess_image, read_upload
from carelens.serve.schemas import TriageResponse
from carelens.symptoms import SymptomBundle, triage

router = APIRouter(prefix="/v1", tags=["triage"])


def parse_facts(facts: str | None) -> dict[str, Any] | None:
    if not facts:
        return None
    try:
        obj = json.loads(facts)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "malformed_json", f"facts is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except (RecursionError, ValueError):  # nesting too deep, or an integer with thousands of digits
        raise ApiError(422, "malformed_json", "facts is nested too deeply or holds a number too large; send a flat "
                                              "object such as {\"age\": 54}") from None
    if not isinstance(obj, dict):
        raise ApiError(422, "malformed_json", "facts must be a JSON object such as {\"age\": 54}")
    return obj


@router.post("/triage", response_model=TriageResponse, responses=ERROR_RESPONSES)
async def triage_route(request: Request, svc: ServicesDep, who: Annotated[Principal, Depends(principal)],
                       image: Annotated[UploadFile | None, File(description="optional image")] = None,
                       model: Annotated[str | None, Form(description="image model name")] = None,
                       species: Annotated[str | None, Form(description="the patient's species (human, dog ...)")] = None,
                       text: Annotated[str | None, Form(max_length=2000, description="symptoms in plain words")] = None,
                       facts: Annotated[str | None, Form(max_length=4000, description="JSON object of clinical facts")] = None,
                       heatmap: Annotated[bool, Form()] = False) -> TriageResponse:
    t = time.perf_counter()
    facts_obj = parse_facts(facts)
    has_image = image is not None and bool(image.filename or image.size)
    has_text = bool(text and text.strip())
    if not has_image and not has_text:
        raise ApiError(422, "nothing_to_assess", "send an image, a symptom description (text), or both")
    if facts_obj and not has_image:
        raise FactsError("clinical facts are fused with an image model trained with them; send an image too")
    # a missing model, or one of another species, is refused before the upload is read; a bad fact is refused
    # before the model runs (it must not fail a shared batch)
    entry = svc.resolve(model, species)[1] if has_image else None
    checked = entry.engine.check_facts(facts_obj) if entry is not None and facts_obj else None
    sym: SymptomBundle | None = svc.symptoms_for(species) if has_text else None
    image_a, png, mname, version, up = None, None, "symptoms", "", None
    if has_image:
        assert image is not None
        up = await read_upload(image, svc)
        image_a, png, mname, version = await assess_image(svc, model, up.image, heatmap, checked, request, species)
    spec, policy = (entry.engine.bundle.labels, entry.engine.policy) if entry is not None else (None, None)
    out = await in_thread(lambda: triage(image=image_a, text=text, symptoms=sym, image_spec=spec, policy=policy))
    a = Assessment.model_validate(out["assessment"])
    if image_a is None:
        mname, version = a.model.name, a.model.version
        svc.metrics.observe_assessment(mname, a.top[0].id, a.triage.level, a.in_distribution)
    ms = (time.perf_counter() - t) * 1000
    # the audit row; free text is kept only with CARELENS_STORE_TEXT, the symptom ids recognised in it always are
    kept = text if svc.settings.store_text else None
    pid = await svc.audit.record(kind="triage", model_name=mname, model_version=version,
                                 assessment={**out, "facts": facts_obj, "text": kept}, latency_ms=ms,
                                 input_sha256=up.sha256 if up else None, size=up.size if up else None,
                                 api_key_id=who.key_id)
    return TriageResponse(id=pid, assessment=a, sources=out["sources"], symptoms=out["symptoms"],
                          facts_used="facts" in a.based_on, heatmap_png=png, latency_ms=round(ms, 2))


@router.get("/symptoms", responses=ERROR_RESPONSES)
async def symptoms(_: Annotated[Principal, Depends(principal)],
                   sym: Annotated[SymptomBundle, Depends(symptom_bundle)]) -> list[dict[str, Any]]:
    return sym.vocab.to_dict()
