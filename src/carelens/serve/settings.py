"""Service settings from environment variables (prefix CARELENS_) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from carelens.explain import LlmSettings

__all__ = ["ServeSettings"]


class ServeSettings(BaseSettings):
    """Every setting of `carelens serve`; each is documented in the README."""

    def decision_overrides(self) -> dict[str, Any]:
        """The decision settings this deployment overrides (``DecisionPolicy`` field -> value)."""
        return {k.removeprefix("decision_"): getattr(self, k) for k in type(self).model_fields
                if k.startswith("decision_") and getattr(self, k) is not None}

    model_config = SettingsConfigDict(env_prefix="CARELENS_", env_file=".env", extra="ignore",
                                      protected_namespaces=("settings_",))

    models_dir: Path = Field(Path("models"), description="folder of image bundles (sub-folders or .zip)")
    symptoms_dir: Path | None = Field(None, description="symptom bundle folder for /v1/triage text")
    database_url: str = Field("sqlite:///carelens.db", description="SQLAlchemy URL of the audit log")
    api_keys: str = Field("", description="comma-separated keys; 'admin:KEY' grants the admin scope")
    api_keys_file: Path | None = Field(None, description="file with one key per line (same syntax)")
    store_images: bool = Field(False, description="keep uploaded images in images_dir")
    images_dir: Path = Field(Path("stored_images"), description="where stored images go")
    max_upload_bytes: int = Field(10 * 1024 * 1024, description="largest accepted upload")
    # A 24-megapixel camera photo; the models see at most a few hundred pixels a side, so more only costs memory. A
    # large JPEG counts at the reduced scale it is decoded at (carelens.data.DECODE_MIN_SIDE): a 48-megapixel phone
    # photo is decoded at 3 megapixels and accepted
    max_pixels: int = Field(24_000_000, description="largest image decoded (width x height; a large JPEG at its "
                                                    "reduced decoding scale)")
    decode_concurrency: int = Field(2, ge=1, description="images decoded at the same time")
    max_queue: int = Field(64, ge=1, description="requests waiting per model before 503 (backpressure)")
    max_in_flight: int = Field(48, ge=1, description="requests in progress before 503 (backpressure at the door)")
    max_batch: int = Field(8, description="micro-batch: most images per model call")
    max_wait_ms: float = Field(5.0, description="micro-batch: longest wait for more requests")
    request_timeout_s: float = Field(30.0, description="a prediction taking longer fails with 503")
    batches_in_flight: int = Field(2, ge=1, description=(
        "micro-batches a model computes at once: while one is in ONNX Runtime the next is prepared"))
    threads: int | None = Field(None, description=(
        "ONNX Runtime threads per batch (default: the cores shared out among the batches in flight)"))
    rate_limit_per_s: float = Field(50.0, ge=0, description="requests per second per API key (0: no limit)")
    rate_limit_burst: int = Field(100, ge=1, description="requests a key may send at once before the rate applies")
    trusted_hosts: str = Field("", description="comma-separated Host names to accept (empty: any)")
    cors_origins: str = Field("", description=(
        "comma-separated origins whose web pages may call the API from a browser (CORS; empty: none, the default)"))
    trusted_keys_dir: Path | None = Field(None, description="Ed25519 public keys (*.pem); set: unsigned bundles refused")
    store_text: bool = Field(False, description="keep symptom free text in the audit log (default: symptom ids only)")
    retention_days: int | None = Field(None, ge=1, description="audit rows older than this are pruned")
    # decision settings: None keeps what each bundle ships (bundle.json `decision`; the defaults for older bundles)
    decision_likely: float | None = Field(None, gt=0, le=1, description="calibrated top probability for 'likely'")
    decision_possible: float | None = Field(None, gt=0, le=1, description="... for 'possible'")
    decision_ambiguous_margin: float | None = Field(None, ge=0, le=1, description="top two closer: 'ambiguous'")
    decision_top_k: int | None = Field(None, ge=1, description="classes listed in `top`")
    decision_floor_when_unsure: str | None = Field(None, description="lowest triage level for unsure input")
    decision_severity_floor: float | None = Field(None, gt=0, le=1,
                                                  description="multi-label: a grade this probable counts for triage")
    decision_critical_threshold: Annotated[float, Field(gt=0, lt=1)] | Literal["off"] | None = Field(None, description=(
        "escalate from this probability of a serious condition (multi-class: the serious classes' sum; multi-label: "
        "any condition that can need urgent care), whatever rule the bundle chose at calibration; off: the set rule "
        "decides (the most urgent condition present or in the set)"))
    workers: int = Field(1, ge=1, description="service processes (`carelens serve --workers`); they share the database")
    metrics_dir: Path | None = Field(None, description=(
        "folder where each worker writes its counts for /metrics to sum (set by `serve --workers` when empty)"))
    worker_sync_s: float = Field(1.0, gt=0, description=(
        "with several workers: how often each one writes its counts and checks for an admin reload"))
    chat_session_ttl_s: float = Field(24 * 3600, gt=0, description="a conversation idle this long is closed")
    llm: LlmSettings = Field(default_factory=LlmSettings, description="optional language model (CARELENS_LLM_*)")
    default_species: str | None = Field(
        None, description="species of requests that name none (default: the one species every loaded model serves)")
