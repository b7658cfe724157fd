"""bundle.json: the self-description of a model bundle (pydantic; no torch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carelens._hashing import file_digest

__all__ = ["FORMAT_VERSION", "OLDEST_READABLE_FORMAT", "BundleSpec", "SelfTest", "canonical_digest", "sha256_file"]

FORMAT_VERSION = 2  # 2 added the optional ``facts`` section (clinical facts fused with the image)
OLDEST_READABLE_FORMAT = 1  # a format-1 bundle is a format-2 bundle without facts


class SelfTest(BaseModel):
    model_config = ConfigDict(frozen=True)
    seed: int
    shape: list[int]
    logits: list[list[float]]
    atol: float = 1e-3


class BundleSpec(BaseModel):
    """Everything needed to preprocess, run and decide, and to know what the model is."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    format_version: int
    name: str
    version: str
    task: str = "multiclass"
    created: str
    intended_use: str = ""
    label_spec: dict[str, Any]
    class_ids: list[str]
    preprocess: dict[str, Any]
    model_io: dict[str, Any]  # input name, output names, feature size, feature map size
    temperature: float
    conformal: dict[str, Any]
    ood: dict[str, Any]
    test_metrics: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str
    training_config: dict[str, Any]
    versions: dict[str, str]
    selftest: SelfTest
    parity: dict[str, Any] = Field(default_factory=dict)
    split: dict[str, Any] = Field(default_factory=dict)  # how train/val/test were made, and a digest
    facts: dict[str, Any] | None = None  # {"fusion": FactsFusion.to_dict(), "schema": ..., "test": ...}
    files: dict[str, str]  # name -> sha256
    integrity: str = ""  # sha256 of this document without this field

    def digest(self) -> str:
        return canonical_digest(self.model_dump(mode="json", exclude={"integrity"}))

    def write(self, folder: Path) -> Path:
        doc = self.model_copy(update={"integrity": self.digest()})
        path = folder / "bundle.json"
        path.write_text(json.dumps(doc.model_dump(mode="json"), indent=1), encoding="utf-8")
        return path


def canonical_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")
