"""The conversation: each message (text, optional photo, optional facts) re-assesses with everything said so
far, and the answer is the assessment plus a plain-language explanation. Sessions live in the database."""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from carelens.errors import NothingRecognisedError
from carelens.labels import LabelSpec
from carelens.policy import Assessment
from carelens.serve.auth import Principal
from carelens.serve.deps import Services, ServicesDep, in_thread, principal
from carelens.serve.errors import ERROR_RESPONSES, ApiError
from carelens.serve.images import assess_image, read_upload
from carelens.serve.routers.triage import parse_facts
from carelens.serve.schemas import ChatResponse, ChatTurn
from carelens.symptoms import triage

router = APIRouter(prefix="/v1", tags=["chat"])

ASK = "Send a photo, or describe what you have noticed (for example: itching for two weeks, no fever)."


def _spec_of(svc: Services, a: Assessment, model: str | None) -> LabelSpec:
    """The label spec that describes the assessment's conditions (its image model's, else the symptom model's)."""
    entry = svc.registry.get(model) if model and "image" in a.based_on else None
    if entry is not None:
        return entry.engine.bundle.labels
    if svc.symptoms is not None:
        return svc.symptoms.spec
    raise ApiError(503, "no_model", "the model behind this conversation is no longer loaded")


@router.post("/chat", response_model=ChatResponse, responses=ERROR_RESPONSES)
async def chat(request: Request, svc: ServicesDep, who: Annotated[Principal, Depends(principal)],
               message: Annotated[str, Form(max_length=2000, description="what the person says")] = "",
               session_id: Annotated[str | None, Form(description="continue this conversation")] = None,
               species: Annotated[str | None, Form(description="the patient's species")] = None,
               model: Annotated[str | None, Form(description="image model name")] = None,
               facts: Annotated[str | None, Form(max_length=4000, description="JSON object of clinical facts")] = None,
               image: Annotated[UploadFile | None, File(description="optional photo")] = None) -> ChatResponse:
    t = time.perf_counter()
    cs = await in_thread(svc.log.open_chat, session_id, svc.species_for(species), who.key_id,
                         svc.settings.chat_session_ttl_s)
    if cs is None:
        raise ApiError(404, "unknown_session", f"no open conversation {session_id!r} (unknown, or idle longer than "
                                               f"{svc.settings.chat_session_ttl_s / 3600:g} h); start a new one")
    if species and cs.species and svc.species_for(species) != cs.species:
        raise ApiError(422, "wrong_species", f"this conversation is about a {cs.species}; start a new one for a {species}")
    species = cs.species
    state: dict[str, Any] = {"texts": list(cs.state.get("texts", [])), "image": cs.state.get("image"),
                             "facts": dict(cs.state.get("facts", {})), "model": cs.state.get("model")}
    if message.strip():
        state["texts"].append(message.strip())
    state["facts"].update(parse_facts(facts) or {})
    png = None
    image_a: Assessment | None = None
    if image is not None and bool(image.filename or image.size):
        name, entry = svc.resolve(model or state["model"], species)
        checked = entry.engine.check_facts(state["facts"]) if state["facts"] else None
        up = await read_upload(image, svc)
        image_a, png, state["model"], _ = await assess_image(svc, name, up.image, True, checked, request, species)
        state["image"] = image_a.model_dump(mode="json")
    elif state["image"]:
        image_a = Assessment.model_validate(state["image"])
    text = "; ".join(state["texts"])
    assessment: Assessment | None = None
    symptoms_seen: dict[str, Any] | None = None
    answer, by = ASK, "template"
    failures: tuple[str, ...] = ()
    if image_a is not None or text:
        sym = svc.symptoms_for(species) if text and (svc.symptoms is not None or image_a is None) else None
        try:
            used = svc.registry.get(state["model"]) if image_a is not None and state["model"] else None
            spec, policy = (used.engine.bundle.labels, used.engine.policy) if used is not None else (None, None)
            out = await in_thread(lambda: triage(image=image_a, text=text or None, symptoms=sym, image_spec=spec,
                                                 policy=policy))
        except NothingRecognisedError as exc:
            answer = f"{exc} {ASK}"
        else:
            assessment = Assessment.model_validate(out["assessment"])
            symptoms_seen = out["symptoms"]
            e = await in_thread(svc.explain, assessment, _spec_of(svc, assessment, state["model"]), message or None)
            answer, by, failures = e.text, e.by, e.guardrail_failures
    await in_thread(svc.log.save_turn, cs, message, answer, assessment.model_dump(mode="json") if assessment else None,
                    by, state, state["model"])
    return ChatResponse(session_id=cs.id, species=species, assessment=assessment, explanation=answer, explained_by=by,
                        guardrail_failures=list(failures), symptoms=symptoms_seen, heatmap_png=png,
                        latency_ms=round((time.perf_counter() - t) * 1000, 2))


@router.get("/chat/{session_id}", response_model=list[ChatTurn], responses=ERROR_RESPONSES)
async def history(session_id: str, svc: ServicesDep, _: Annotated[Principal, Depends(principal)]) -> list[ChatTurn]:
    rows = await in_thread(svc.log.chat_history, session_id)
    if not rows:
        raise ApiError(404, "unknown_session", f"no conversation {session_id!r}")
    return [ChatTurn(role=r.role, text=r.text, created=r.created.isoformat(), assessment=r.assessment,
                     explained_by=r.explained_by) for r in rows]
