"""Service settings from environment variables (prefix CARELENS_) or a .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServeSettings"]


class ServeSettings(BaseSettings):
    """Every setting of `carelens serve`; each is documented in the README."""

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
    max_pixels: int = Field(40_000_000, description="largest accepted image (width x height)")
    max_batch: int = Field(8, description="micro-batch: most images per model call")
    max_wait_ms: float = Field(5.0, description="micro-batch: longest wait for more requests")
    request_timeout_s: float = Field(30.0, description="a prediction taking longer fails with 503")
    threads: int | None = Field(None, description="ONNX Runtime threads (default: all cores)")
