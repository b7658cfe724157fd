"""The signal bundle (``task: signal``): a 1-D network over heartbeat windows, in the same family as image
bundles: ``model.onnx`` (inputs ``wave`` and ``rr``, outputs ``logits`` and ``features``), ``ood.npz`` (the
out-of-distribution gate's statistics) and ``bundle.json`` (label spec, how beats are cut, temperature,
conformal thresholds, OOD parameters, measured figures, a self-test, file hashes, integrity). Loads with ONNX
Runtime and numpy alone.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from carelens.bundle._load import make_session
from carelens.bundle._manifest import Identified, ManifestHead
from carelens.calibrate import ConformalClassifier, OODGate, TemperatureScaler
from carelens.errors import BundleError
from carelens.hashing import canonical_digest, file_digest
from carelens.labels import LabelSpec
from carelens.metrics import softmax

__all__ = ["SIGNAL_FORMAT", "SignalBundle", "SignalSpec", "is_signal", "write_signal_bundle"]

SIGNAL_FORMAT = 1
FILES = ("model.onnx", "ood.npz")


class SignalSpec(ManifestHead):
    task: Literal["signal"] = "signal"
    window: dict[str, float] = Field(description="fs, before_s, after_s: how each beat is cut (carelens.ecg)")
    temperature: float
    conformal: dict[str, Any]
    ood: dict[str, Any]
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    selftest: dict[str, Any]  # {"waves": [...], "rr": [...], "logits": [...]}
    files: dict[str, str]
    versions: dict[str, str] = Field(default_factory=dict)
    integrity: str = ""


@dataclass
class SignalBundle(Identified):
    path: Path
    spec: SignalSpec
    session: Any  # onnxruntime.InferenceSession
    temperature: TemperatureScaler
    conformal: ConformalClassifier
    ood: OODGate

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> SignalBundle:
        folder = Path(path)
        f = folder / "bundle.json"
        if not f.is_file():
            raise BundleError(f"{folder} is not a bundle: bundle.json is missing")
        raw = json.loads(f.read_text(encoding="utf-8"))
        if raw.get("task") != "signal" or raw.get("format_version") != SIGNAL_FORMAT:
            raise BundleError(f"{f} is not a signal bundle of format {SIGNAL_FORMAT}")
        if raw.get("integrity") != canonical_digest({k: v for k, v in raw.items() if k != "integrity"}):
            raise BundleError(f"{f} was modified after export (integrity check failed); re-export it")
        spec = SignalSpec.model_validate(raw)
        for name in FILES:
            if not (folder / name).is_file() or file_digest(folder / name) != spec.files.get(name):
                raise BundleError(f"{name} in {folder} is missing or does not match its recorded sha256; re-export it")
        b = cls(folder, spec, make_session(folder / "model.onnx", threads),
                TemperatureScaler.from_dict({"temperature": spec.temperature}), ConformalClassifier.from_dict(spec.conformal),
                OODGate.from_dict(spec.ood, folder / "ood.npz"))
        st = spec.selftest
        logits, _ = b.run(np.asarray(st["waves"], np.float32), np.asarray(st["rr"], np.float32))
        if not np.allclose(logits, np.asarray(st["logits"]), atol=1e-3):
            raise BundleError(f"{folder}: the self-test beats give other outputs than at export (max difference "
                              f"{np.abs(logits - np.asarray(st['logits'])).max():.2g})")
        return b

    def run(self, waves: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) for beat windows (n, 1, L) and RR features (n, k)."""
        out = self.session.run(["logits", "features"], {"wave": np.ascontiguousarray(waves, np.float32),
                                                         "rr": np.ascontiguousarray(rr, np.float32)})
        return out[0], out[1]

    def classify(self, waves: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(calibrated probabilities (n, k), conformal set masks (n, k), in distribution (n,))."""
        logits, feats = self.run(waves, rr)
        proba = softmax(logits, self.temperature.temperature_)
        return proba, self.conformal.predict_set(proba), self.ood.is_in_distribution(feats, logits)


def is_signal(path: str | Path) -> bool:
    f = Path(path) / "bundle.json"
    try:
        return f.is_file() and json.loads(f.read_text(encoding="utf-8")).get("task") == "signal"
    except (OSError, ValueError, AttributeError):
        return False


def write_signal_bundle(out: Path, onnx_path: Path, gate: OODGate, *, name: str, version: str, spec: LabelSpec,
                        window: dict[str, float], temperature: TemperatureScaler, conformal: ConformalClassifier,
                        selftest_waves: np.ndarray, selftest_rr: np.ndarray, metrics: dict[str, Any],
                        training: dict[str, Any], versions: dict[str, str] | None = None) -> Path:
    """Write ``out/`` (model.onnx copied, ood.npz saved, bundle.json sealed) and load it back (self-test)."""
    out.mkdir(parents=True, exist_ok=True)
    if onnx_path.resolve() != (out / "model.onnx").resolve():
        shutil.copy(onnx_path, out / "model.onnx")
    gate.save(out / "ood.npz")
    logits, _ = make_session(out / "model.onnx").run(["logits", "features"], {"wave": selftest_waves, "rr": selftest_rr})
    doc: dict[str, Any] = {
        "format_version": SIGNAL_FORMAT, "task": "signal", "name": name, "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "intended_use": spec.description.strip(),
        "label_spec": spec.model_dump(mode="json", by_alias=True), "class_ids": spec.class_ids, "window": window,
        "temperature": float(temperature.temperature_), "conformal": conformal.to_dict(), "ood": gate.to_dict(),
        "metrics": metrics, "training": training,
        "selftest": {"waves": selftest_waves.tolist(), "rr": selftest_rr.tolist(), "logits": logits.tolist()},
        "files": {f: file_digest(out / f) for f in FILES}, "versions": dict(versions or {}),
    }
    doc = json.loads(json.dumps(doc))
    doc["integrity"] = canonical_digest(doc)
    (out / "bundle.json").write_text(json.dumps(doc), encoding="utf-8")
    SignalBundle.load(out)
    return out
