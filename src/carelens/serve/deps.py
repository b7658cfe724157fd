"""What the routes share, built once per app and handed to them through ``Depends``: the settings, the model
registry, the key ring, the audit log, the metrics and the symptom bundle. A test can override any one."""

# No `from __future__ import annotations`: FastAPI resolves these signatures at import.

import asyncio
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request

from carelens.bundle import DecisionParams
from carelens.explain import Explanation, LlmExplainer, explain
from carelens.labels import LabelSpec
from carelens.policy import Assessment
from carelens.serve.auth import KeyRing, Principal, RateLimiter
from carelens.serve.errors import ApiError
from carelens.serve.metrics import Metrics
from carelens.serve.registry import ModelEntry, ModelRegistry
from carelens.serve.settings import ServeSettings
from carelens.serve.storage import AuditLog, GroupWriter
from carelens.settings import threads_per_process
from carelens.symptoms import SymptomBundle

__all__ = ["Services", "ServicesDep", "admin", "in_thread", "principal", "services", "symptom_bundle"]

T = TypeVar("T")


@dataclass
class Services:
    settings: ServeSettings
    registry: ModelRegistry
    keys: KeyRing
    log: AuditLog
    limiter: RateLimiter
    decode_slots: asyncio.Semaphore  # decoding is memory-hungry: a few at a time, the rest wait
    audit: GroupWriter  # the assessments' rows, group-committed to ``log``
    metrics: Metrics = field(default_factory=Metrics)
    symptoms: SymptomBundle | None = None
    symptoms_error: str | None = None
    explainer: LlmExplainer | None = None  # with CARELENS_LLM_URL; otherwise templates only
    models_generation: int = 0  # with several workers: the admin reloads this worker has caught up with
    thawed_at: float | None = None  # when a reload last thawed the heap (time.monotonic); None: frozen or never

    def freeze_heap(self) -> None:
        """Put what is alive now (models, vocabularies, libraries: it lives as long as the service) out of the garbage
        collector's sight, so that its full collections stop walking it. With the int8 bundle at 200 requests/s they
        paused every request 8 times in 25 s, up to 97 ms, 590 ms in all; frozen, 2-8 ms each."""
        gc.collect()
        gc.freeze()
        self.thawed_at = None

    def thaw_heap(self) -> None:
        """Before a reload: the models it retires were frozen with the rest, and could never be collected."""
        gc.unfreeze()
        self.thawed_at = time.monotonic()

    def settle_heap(self, now: float | None = None) -> bool:
        """Freeze again once the models a reload retired can no longer be in use (a request timeout after the
        thaw; they are collected first); whether it did."""
        if self.thawed_at is None or (now if now is not None else time.monotonic()) - self.thawed_at < \
                self.settings.request_timeout_s:
            return False
        self.freeze_heap()
        return True

    def reload(self) -> dict[str, Any]:
        """Reload the bundles here; with several workers, tell the others through the database (they follow
        within ``worker_sync_s``)."""
        self.thaw_heap()
        result = self.registry.load(wait=False)
        if self.settings.workers > 1:
            self.models_generation = self.log.bump("models")
        return result

    def sync_workers(self) -> None:
        """One tick of a worker among several: publish its counts, and reload if another worker was told to."""
        if self.settings.metrics_dir is not None:
            self.metrics.dump(self.settings.metrics_dir)
        generation = self.log.counter("models")
        if generation != self.models_generation:
            self.thaw_heap()
            self.registry.load(wait=True)
            self.models_generation = generation

    def metrics_text(self) -> str:
        """The Prometheus text: this worker's counts, or with a metrics folder the sum over every worker's."""
        folder = self.settings.metrics_dir
        if folder is None:
            return self.metrics.render()
        self.metrics.dump(folder)
        return Metrics.combined(folder).render()

    @classmethod
    def from_settings(cls, cfg: ServeSettings) -> "Services":
        """Everything the routes share. Raises ConfigError for a keys file that is missing or empty."""
        keys = KeyRing(cfg.api_keys, cfg.api_keys_file)
        DecisionParams().policy(**cfg.decision_overrides())  # inconsistent decision settings: ConfigError at start
        threads = cfg.threads or threads_per_process(cfg.batches_in_flight)
        registry = ModelRegistry(cfg.models_dir, cfg.max_batch, cfg.max_wait_ms, threads, max_queue=cfg.max_queue,
                                 in_flight=cfg.batches_in_flight,
                                 trusted_keys_dir=cfg.trusted_keys_dir, decision=cfg.decision_overrides())
        log = AuditLog(cfg.database_url)
        return cls(settings=cfg, registry=registry, keys=keys, log=log, audit=GroupWriter(log),
                   limiter=RateLimiter(cfg.rate_limit_per_s, cfg.rate_limit_burst),
                   decode_slots=asyncio.Semaphore(cfg.decode_concurrency),
                   explainer=LlmExplainer(cfg.llm) if cfg.llm.url else None)

    def explain(self, a: Assessment, spec: LabelSpec, words: str | None) -> Explanation:
        """The explanation of an assessment: the language model's when configured and safe, else the template's;
        counted in /metrics."""
        if self.explainer is None:
            self.metrics.observe_explanation("template", "ok")
            return explain(a, spec)
        e = self.explainer.explain(a, spec, words)
        outcome = "ok" if e.by == "llm" else ("error" if e.guardrail_failures[0].startswith("language model failed")
                                             else "guardrail")
        self.metrics.observe_explanation(e.by, outcome)
        return e

    def species_for(self, species: str | None) -> str | None:
        """The request's species; else the deployment's default (the setting, or the one species that every
        loaded model and the symptom bundle serve); else None (no species check)."""
        if species:
            s = species.strip().lower()
            if not s.replace("_", "").isalpha():
                raise ApiError(422, "bad_species", f"species must be a name such as human, dog or cat, got {species!r}")
            return s
        if self.settings.default_species:
            return self.settings.default_species
        served = {x for e in self.registry.models.values() for x in e.engine.bundle.labels.species}
        if self.symptoms is not None:
            served |= set(self.symptoms.spec.species)
        return served.pop() if len(served) == 1 else None

    def resolve(self, name: str | None, species: str | None = None) -> tuple[str, ModelEntry]:
        """The named model, or the only one loaded (for the species); 404/422 naming what is loaded. A model of
        another species than the request's is never used: 422 naming the models that exist for it."""
        species = self.species_for(species)
        models = self.registry.models
        fitting = [n for n, e in models.items() if species is None or e.engine.bundle.labels.serves(species)]
        loaded = ", ".join([*models, *self.registry.tabular]) or "none"
        if name is None:
            if len(fitting) != 1:
                where = f" for {species}" if species else ""
                raise ApiError(422, "model_required", f"name a model{where}; loaded{where}: {', '.join(fitting) or 'none'}")
            name = fitting[0]
        entry = self.registry.get(name)
        if entry is None and name in self.registry.signal:
            sb = self.registry.signal[name]
            where = "POST /v1/ecg" if sb.spec.input == "beats" else f"POST /v1/models/{name}/predict (or /v1/ecg)"
            raise ApiError(422, "signal_model", f"model {name!r} reads ECG recordings, not images: send the record "
                                                f"to {where}")
        if entry is None:
            raise ApiError(404, "unknown_model", f"no model named {name!r}; loaded: {loaded}")
        if species is not None and not entry.engine.bundle.labels.serves(species):
            raise ApiError(422, "wrong_species",
                           f"model {name!r} is for {', '.join(entry.engine.bundle.labels.species)}, not {species}; "
                           f"models for {species}: {', '.join(fitting) or 'none'}")
        return name, entry

    def symptoms_for(self, species: str | None) -> SymptomBundle:
        """The symptom bundle, if it serves the request's species (503 without one, 422 for another species)."""
        if self.symptoms is None:
            raise ApiError(503, "symptoms_unavailable", self.symptoms_error or "no symptom bundle is configured")
        species = self.species_for(species)
        if species is not None and not self.symptoms.spec.serves(species):
            raise ApiError(422, "wrong_species", f"the symptom model is for {', '.join(self.symptoms.spec.species)}, "
                                                 f"not {species}; there is no symptom model for {species}")
        return self.symptoms


async def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


async def principal(request: Request, svc: ServicesDep, x_api_key: Annotated[str | None, Header()] = None,
                    authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller's key (401 without a valid one), within its rate (429 with Retry-After beyond it)."""
    key = x_api_key or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None)
    p = svc.keys.check(key)
    if p is None:
        raise ApiError(401, "unauthorized", "a valid API key is required (header X-API-Key or Authorization: Bearer)")
    bucket = p.key_id if svc.keys.enabled else f"{p.key_id}:{request.client.host if request.client else '?'}"
    wait = svc.limiter.take(bucket)
    if wait > 0:
        raise ApiError(429, "rate_limited", f"too many requests for this key; retry in {wait:.1f} s",
                       {"Retry-After": str(max(1, math.ceil(wait)))})
    return p


async def admin(p: Annotated[Principal, Depends(principal)]) -> Principal:
    if not p.admin:
        raise ApiError(403, "forbidden", "this endpoint needs an API key with the admin scope")
    return p


async def symptom_bundle(svc: ServicesDep) -> SymptomBundle:
    return svc.symptoms_for(None)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (decoding, the database, parsing, loading) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
