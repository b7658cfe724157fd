"""The FastAPI application: the bundle engine behind an HTTP API, an audit log and a web page."""

# No `from __future__ import annotations` here: FastAPI must resolve the local dependencies.

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from carelens import __version__
from carelens.data._image_io import decode_image
from carelens.errors import BundleError, CarelensError, ConfigError, DataError, ImageReadError
from carelens.predict.engine import overlay_heatmap
from carelens.predict.schema import Assessment
from carelens.serve.auth import KeyRing, Principal
from carelens.serve.metrics import Metrics
from carelens.serve.registry import ModelRegistry
from carelens.serve.schemas import (
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelInfo,
    PredictResponse,
    TriageResponse,
)
from carelens.serve.settings import ServeSettings
from carelens.serve.storage import AuditLog

__all__ = ["ApiError", "create_app"]


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status, self.kind, self.message = status, kind, message


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
    413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    cfg = settings or ServeSettings()
    registry = ModelRegistry(cfg.models_dir, cfg.max_batch, cfg.max_wait_ms, cfg.threads)
    keys = KeyRing(cfg.api_keys, cfg.api_keys_file)
    metrics = Metrics()
    log = AuditLog(cfg.database_url)
    state: dict[str, Any] = {"symptoms": None, "symptoms_error": None}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, registry.load)
        if cfg.symptoms_dir is not None:
            try:
                from carelens.symptoms import SymptomBundle

                sb = SymptomBundle.load(cfg.symptoms_dir)
                sb.parser.parse("warm up: fever and a cough")  # embeds the vocabulary once, at start
                state["symptoms"] = sb
            except CarelensError as exc:
                state["symptoms_error"] = str(exc)
        yield

    app = FastAPI(title="carelens", version=__version__, lifespan=lifespan,
                  description="Triage assessments from images and symptoms. Not a diagnosis.")
    app.state.registry, app.state.log, app.state.metrics, app.state.settings = registry, log, metrics, cfg

    # -- errors: translated once, here ---------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.kind, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "validation_error", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(CarelensError)
    async def _domain(_: Request, exc: CarelensError) -> JSONResponse:
        status = 503 if isinstance(exc, BundleError) else 422
        return _error(status, type(exc).__name__, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", "the server failed to handle this request; it has been logged")

    @app.middleware("http")
    async def _observe(request: Request, call_next: Any) -> Any:
        t = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.observe_request(request.method, path, response.status_code, time.perf_counter() - t)
        return response

    # -- auth ----------------------------------------------------------------------------------
    def principal(x_api_key: Annotated[str | None, Header()] = None,
                  authorization: Annotated[str | None, Header()] = None) -> Principal:
        key = x_api_key or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None)
        p = keys.check(key)
        if p is None:
            raise ApiError(401, "unauthorized", "a valid API key is required (header X-API-Key or Authorization: Bearer)")
        return p

    def admin(p: Annotated[Principal, Depends(principal)]) -> Principal:
        if not p.admin:
            raise ApiError(403, "forbidden", "this endpoint needs an API key with the admin scope")
        return p

    # -- helpers -------------------------------------------------------------------------------
    async def read_upload(upload: UploadFile) -> tuple[bytes, np.ndarray]:
        data = await upload.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise ApiError(413, "too_large", f"the upload is over the {cfg.max_upload_bytes:,}-byte limit")
        if not data:
            raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
        try:
            img = await asyncio.get_running_loop().run_in_executor(
                None, lambda: decode_image(data, name=upload.filename or "upload", max_pixels=cfg.max_pixels))
        except ImageReadError as exc:
            if "limit" in exc.reason or "too many pixels" in exc.reason:
                raise ApiError(413, "too_many_pixels", exc.reason) from None
            if "not a recognised image" in exc.reason:
                raise ApiError(415, "not_an_image", f"{upload.filename or 'the upload'} is {exc.reason}; "
                                                    "send a JPEG, PNG, BMP, TIFF or WebP image") from None
            raise ApiError(422, "unreadable_image", str(exc)) from None
        return data, img

    def store(data: bytes, digest: str) -> None:
        if cfg.store_images:
            cfg.images_dir.mkdir(parents=True, exist_ok=True)
            (cfg.images_dir / digest).write_bytes(data)

    def resolve(name: str | None) -> tuple[str, Any]:
        if name is None:
            if len(registry.models) != 1:
                raise ApiError(422, "model_required", f"name a model; loaded: {', '.join(registry.models) or 'none'}")
            name = next(iter(registry.models))
        entry = registry.get(name)
        if entry is None:
            raise ApiError(404, "unknown_model", f"no model named {name!r}; loaded: {', '.join(registry.models) or 'none'}")
        return name, entry

    async def run_model(name: str | None, img: np.ndarray, heatmap: bool,
                        facts: dict[str, Any] | None = None) -> tuple[Assessment, str | None, str, str]:
        name, entry = resolve(name)
        try:
            a, heat = await asyncio.wait_for(entry.batcher.submit(img, heatmap, facts), cfg.request_timeout_s)
        except TimeoutError:
            raise ApiError(503, "timeout", f"the model did not answer within {cfg.request_timeout_s:.0f} s") from None
        png = base64.b64encode(overlay_heatmap(img, heat)).decode() if heatmap and heat is not None else None
        metrics.observe_assessment(name, a.top[0].id, a.triage.level, a.in_distribution)
        return a, png, name, entry.engine.bundle.version

    # -- routes --------------------------------------------------------------------------------
    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready", tags=["ops"], responses={503: {"model": ErrorResponse}})
    async def ready() -> Any:
        if not registry.ready:
            detail = "; ".join(f"{k}: {v}" for k, v in registry.errors.items()) or f"no bundles in {cfg.models_dir}"
            return _error(503, "not_ready", detail)
        return {"status": "ready", "models": {n: e.engine.bundle.version for n, e in registry.models.items()},
                "symptoms": state["symptoms"] is not None}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus() -> str:
        return metrics.render()

    @app.get("/v1/models", tags=["models"], response_model=list[ModelInfo], responses=ERRORS)
    async def list_models(_: Annotated[Principal, Depends(principal)]) -> list[ModelInfo]:
        out = []
        for name, e in registry.models.items():
            s = e.engine.bundle.spec
            tm = s.test_metrics
            out.append(ModelInfo(
                name=name, version=s.version, task=s.task, modality=str(s.label_spec.get("modality", "")),
                classes=[{"id": c.id, "name": c.name, "group": c.group, "triage": c.triage}
                         for c in e.engine.bundle.labels.classes],
                image_size=int(s.preprocess["image_size"]),
                metrics={k: tm.get(k) for k in ("balanced_accuracy", "accuracy", "macro_auc") if k in tm}
                | {k: s.calibration.get(k) for k in ("ece", "coverage", "mean_set_size") if k in s.calibration},
                intended_use=s.intended_use, facts=(s.facts or {}).get("schema")))
        return out

    @app.post("/v1/models/{name}/predict", tags=["models"], response_model=PredictResponse, responses=ERRORS)
    async def predict(name: str, who: Annotated[Principal, Depends(principal)],
                      file: Annotated[UploadFile, File(description="the image")],
                      heatmap: Annotated[bool, Query(description="add a heatmap overlay")] = False) -> PredictResponse:
        t = time.perf_counter()
        if registry.get(name) is None:
            raise ApiError(404, "unknown_model", f"no model named {name!r}; loaded: {', '.join(registry.models) or 'none'}")
        data, img = await read_upload(file)
        a, png, mname, version = await run_model(name, img, heatmap)
        digest = hashlib.sha256(data).hexdigest()
        ms = (time.perf_counter() - t) * 1000
        pid = await asyncio.get_running_loop().run_in_executor(None, lambda: log.record(
            kind="predict", model_name=mname, model_version=version, assessment=a.model_dump(mode="json"),
            latency_ms=ms, input_sha256=digest, size=(img.shape[1], img.shape[0]), api_key_id=who.key_id))
        store(data, digest)
        return PredictResponse(id=pid, assessment=a, heatmap_png=png, latency_ms=round(ms, 2))

    @app.post("/v1/triage", tags=["triage"], response_model=TriageResponse, responses=ERRORS)
    async def triage(who: Annotated[Principal, Depends(principal)],
                     image: Annotated[UploadFile | None, File(description="optional image")] = None,
                     model: Annotated[str | None, Form(description="image model name")] = None,
                     text: Annotated[str | None, Form(max_length=2000, description="symptoms in plain words")] = None,
                     facts: Annotated[str | None, Form(description="JSON object of clinical facts")] = None,
                     heatmap: Annotated[bool, Form()] = False) -> TriageResponse:
        from carelens.symptoms import triage as combine

        t = time.perf_counter()
        facts_obj: dict[str, Any] | None = None
        if facts:
            try:
                facts_obj = json.loads(facts)
            except json.JSONDecodeError as exc:
                raise ApiError(422, "malformed_json", f"facts is not valid JSON: {exc.msg} at position {exc.pos}") from None
            if not isinstance(facts_obj, dict):
                raise ApiError(422, "malformed_json", "facts must be a JSON object such as {\"age\": 54}")
        has_image = image is not None and (image.filename or image.size)
        if not has_image and not (text and text.strip()):
            raise ApiError(422, "nothing_to_assess", "send an image, a symptom description (text), or both")
        checked: dict[str, Any] | None = None
        if facts_obj:  # checked before the model runs: a bad fact must not fail a shared batch
            if not has_image:
                raise ApiError(422, "invalid_facts", "clinical facts are fused with an image model trained with "
                                                     "them; send an image too")
            try:
                checked = resolve(model)[1].engine.check_facts(facts_obj)
            except ConfigError as exc:
                raise ApiError(422, "invalid_facts", str(exc)) from None
        if text and text.strip() and state["symptoms"] is None:
            raise ApiError(503, "symptoms_unavailable", state["symptoms_error"] or "no symptom bundle is configured")
        image_a, png, mname, version, digest, size = None, None, "symptoms", "", None, None
        if has_image:
            data, img = await read_upload(image)  # type: ignore[arg-type]
            image_a, png, mname, version = await run_model(model, img, heatmap, checked)
            digest, size = hashlib.sha256(data).hexdigest(), (img.shape[1], img.shape[0])
            store(data, digest)
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(None, lambda: combine(image=image_a, text=text, symptoms=state["symptoms"]))
        except DataError as exc:
            raise ApiError(422, "no_symptom_recognised", str(exc)) from None
        a = Assessment.model_validate(out["assessment"])
        if image_a is None:
            mname, version = a.model.name, a.model.version
            metrics.observe_assessment(mname, a.top[0].id, a.triage.level, a.in_distribution)
        ms = (time.perf_counter() - t) * 1000
        record = {**out, "facts": facts_obj, "text": text}
        pid = await loop.run_in_executor(None, lambda: log.record(
            kind="triage", model_name=mname, model_version=version, assessment=record, latency_ms=ms,
            input_sha256=digest, size=size, api_key_id=who.key_id))
        return TriageResponse(id=pid, assessment=a, sources=out["sources"], symptoms=out["symptoms"],
                              facts_used="facts" in a.based_on, heatmap_png=png, latency_ms=round(ms, 2))

    @app.get("/v1/symptoms", tags=["triage"], responses=ERRORS)
    async def symptoms(_: Annotated[Principal, Depends(principal)]) -> list[dict[str, Any]]:
        if state["symptoms"] is None:
            raise ApiError(503, "symptoms_unavailable", state["symptoms_error"] or "no symptom bundle is configured")
        return state["symptoms"].vocab.to_dict()  # type: ignore[no-any-return]

    @app.post("/v1/feedback", tags=["feedback"], response_model=FeedbackResponse, responses=ERRORS)
    async def feedback(body: FeedbackRequest, who: Annotated[Principal, Depends(principal)]) -> FeedbackResponse:
        fid = await asyncio.get_running_loop().run_in_executor(
            None, lambda: log.add_feedback(body.prediction_id, body.diagnosis, body.note, who.key_id))
        if fid is None:
            raise ApiError(404, "unknown_prediction", f"no prediction with id {body.prediction_id!r}")
        return FeedbackResponse(feedback_id=fid, prediction_id=body.prediction_id)

    @app.post("/v1/admin/reload", tags=["ops"], responses=ERRORS)
    async def reload(_: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, registry.load)  # type: ignore[no-any-return]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return (resources.files("carelens.serve") / "static" / "index.html").read_text(encoding="utf-8")

    return app


