"""The models: what is loaded, and one case assessed by a named model: an image (multipart ``file``) for image
models, a JSON object of inputs for clinical (tabular) models, an ECG recording (multipart ``file``: a WFDB
record's .hea and .dat, or one .edf or .csv) for record models."""

import dataclasses
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from carelens.bundle import SignalBundle
from carelens.policy import DecisionPolicy
from carelens.predict import assess_record
from carelens.serve.auth import Principal
from carelens.serve.deps import Services, ServicesDep, in_thread, principal
from carelens.serve.errors import ERROR_RESPONSES, ApiError
from carelens.serve.images import assess_image, read_upload
from carelens.serve.records import read_record_upload
from carelens.serve.registry import ModelEntry, TabularEntry
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
        # the network's test figures at training, then the bundle's own (its calls with its finding weights, its
        # ensemble and views, its decision rule's critical-miss beside over-triage) where its calibration has them
        metrics={k: tm.get(k) for k in ("balanced_accuracy", "accuracy", "macro_auc") if k in tm}
        | {k: s.calibration.get(k) for k in ("balanced_accuracy", "ece", "coverage", "mean_set_size",
                                             "critical_miss_rate", "over_triage_rate") if k in s.calibration},
        intended_use=s.intended_use, facts=s.facts.schema_ if s.facts else None,
        decision=dataclasses.asdict(entry.engine.policy))


def _tabular_info(name: str, entry: TabularEntry) -> ModelInfo:
    b = entry.bundle
    m = b.spec.metrics
    return ModelInfo(
        name=name, version=b.version, task="tabular", modality=b.labels.modality or "tabular",
        species=list(b.labels.species), care_provider=b.labels.provider,
        classes=[{"id": c.id, "name": c.name, "group": c.group, "triage": c.triage} for c in b.labels.classes],
        inputs=[f.model_dump(mode="json") for f in b.spec.inputs],
        metrics={k: m[k] for k in ("auc", "balanced_accuracy", "accuracy", "ece", "coverage", "mean_set_size",
                                   "critical_miss_rate", "over_triage_rate") if k in m},
        intended_use=b.spec.intended_use, decision=dataclasses.asdict(entry.policy))


def _signal_info(name: str, b: SignalBundle, policy: DecisionPolicy | None) -> ModelInfo:
    """A beat classifier (used by POST /v1/ecg) or a record model (POST /v1/models/{name}/predict, and /v1/ecg;
    ``policy``: the decision settings in force for it)."""
    m = b.spec.metrics
    use = (" Used by POST /v1/ecg to classify each beat." if b.spec.input == "beats" else
           f" Reads {b.spec.window['seconds']:g} s of the leads {', '.join(b.spec.leads)}: send the recording to "
           f"POST /v1/models/{name}/predict (or /v1/ecg).")
    return ModelInfo(
        name=name, version=b.version, task="signal", modality=b.labels.modality or "ecg", species=list(b.labels.species),
        care_provider=b.labels.provider,
        classes=[{"id": c.id, "name": c.name, "group": c.group, "triage": c.triage} for c in b.labels.classes],
        # a record model's test figures as shipped (its decision rule's critical-miss beside over-triage)
        metrics={k: m[k] for k in ("balanced_accuracy", "macro_auc", "ece", "coverage") if k in m}
        | {k: m["test"][k] for k in ("macro_auc", "fnr", "ece", "critical_miss_rate", "over_triage_rate")
           if k in m.get("test", {})},
        intended_use=b.spec.intended_use + use, inputs=[{"name": lead, "type": "ecg_lead"} for lead in b.spec.leads] or None,
        decision=dataclasses.asdict(policy) if policy is not None else {})


@router.get("", response_model=list[ModelInfo], responses=ERROR_RESPONSES)
async def list_models(svc: ServicesDep, _: Annotated[Principal, Depends(principal)]) -> list[ModelInfo]:
    return ([_info(name, e) for name, e in svc.registry.models.items()]
            + [_tabular_info(name, e) for name, e in svc.registry.tabular.items()]
            + [_signal_info(name, b, svc.registry.signal_policy(b) if b.spec.input == "record" else None)
               for name, b in svc.registry.signal.items()])


async def _predict_tabular(request: Request, entry: TabularEntry, svc: Services, who: Principal,
                           species: str | None) -> PredictResponse:
    t = time.perf_counter()
    wanted = svc.species_for(species) if species else None
    if wanted is not None and not entry.bundle.labels.serves(wanted):
        raise ApiError(422, "wrong_species", f"model {entry.bundle.name!r} is for "
                                             f"{', '.join(entry.bundle.labels.species)}, not {wanted}")
    if "json" not in request.headers.get("content-type", ""):
        raise ApiError(415, "json_required", f"model {entry.bundle.name!r} is a clinical model: send its inputs as a "
                                             "JSON object (Content-Type: application/json); GET /v1/models lists them")
    try:
        body: Any = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(422, "malformed_json", f"the body is not a JSON object: {exc}") from None
    if not isinstance(body, dict) or not all(isinstance(v, (str, int, float, bool)) or v is None for v in body.values()):
        raise ApiError(422, "malformed_json", "send a flat JSON object of inputs, e.g. {\"age\": 54, \"sex\": \"male\"}")
    row = entry.bundle.check(body)  # FactsError (422) naming every unknown, out-of-range or missing input
    a, contributions = entry.bundle.assess(row, entry.policy)
    ms = (time.perf_counter() - t) * 1000
    svc.metrics.observe_assessment(entry.bundle.name, a.top[0].id, a.triage.level, a.in_distribution)
    pid = await svc.audit.record(kind="predict", model_name=entry.bundle.name, model_version=entry.bundle.version,
                                 assessment={"assessment": a.model_dump(mode="json"), "inputs": row}, latency_ms=ms,
                                 api_key_id=who.key_id)
    return PredictResponse(id=pid, assessment=a, contributions=contributions,
                           risk_outcome=entry.bundle.labels.classes[entry.bundle.risk_outcome].id, latency_ms=round(ms, 2))


async def _predict_record(b: SignalBundle, files: list[UploadFile], svc: Services, who: Principal,
                          species: str | None) -> PredictResponse:
    t = time.perf_counter()
    wanted = svc.species_for(species) if species else None
    if wanted is not None and not b.labels.serves(wanted):
        raise ApiError(422, "wrong_species", f"model {b.name!r} is for {', '.join(b.labels.species)}, not {wanted}")
    if not files:
        raise ApiError(422, "file_required", f"model {b.name!r} reads an ECG recording: send it as multipart 'file' "
                                             "fields (a WFDB record's .hea and .dat, or one .edf or .csv)")
    sig, sha = await read_record_upload(files, svc)
    a = await in_thread(assess_record, b, sig, svc.registry.signal_policy(b))  # DataError (422) naming missing leads or a too-short recording
    ms = (time.perf_counter() - t) * 1000
    pid = await svc.audit.record(kind="predict", model_name=b.name, model_version=b.version, assessment=a,
                                 latency_ms=ms, input_sha256=sha, api_key_id=who.key_id)
    return PredictResponse(id=pid, assessment=a, latency_ms=round(ms, 2))


@router.post("/{name}/predict", response_model=PredictResponse, responses=ERROR_RESPONSES,
             form_limits={"max_files": 2, "max_fields": 8, "max_part_size": 64 * 1024})  # an image, or a record's .hea + .dat
async def predict(request: Request, name: str, svc: ServicesDep, who: Annotated[Principal, Depends(principal)],
                  file: Annotated[list[UploadFile] | None, File(
                      description="the image (image models); the recording's files (record models)")] = None,
                  heatmap: Annotated[bool, Query(description="add a heatmap overlay")] = False,
                  species: Annotated[str | None, Query(description="the patient's species")] = None) -> PredictResponse:
    tab = svc.registry.tabular.get(name)
    if tab is not None:
        return await _predict_tabular(request, tab, svc, who, species)
    sig = svc.registry.signal.get(name)
    if sig is not None and sig.spec.input == "record":
        return await _predict_record(sig, file or [], svc, who, species)
    svc.resolve(name, species)  # 404 / 422 before the upload is read
    if not file:
        raise ApiError(422, "file_required", f"model {name!r} is an image model: send the image as the multipart "
                                             "field 'file'")
    if len(file) > 1:
        raise ApiError(422, "one_image", f"model {name!r} assesses one image per request; {len(file)} were sent")
    t = time.perf_counter()
    up = await read_upload(file[0], svc)
    a, png, mname, version = await assess_image(svc, name, up.image, heatmap, request=request, species=species)
    ms = (time.perf_counter() - t) * 1000
    pid = await svc.audit.record(kind="predict", model_name=mname, model_version=version, assessment=a, latency_ms=ms,
                                 input_sha256=up.sha256, size=up.size, api_key_id=who.key_id)
    return PredictResponse(id=pid, assessment=a, heatmap_png=png, latency_ms=round(ms, 2))
