"""The signal bundle (``task: signal``): a 1-D network over an ECG, in the same family as image bundles:
``model.onnx`` (outputs ``logits`` and ``features``), ``ood.npz`` (the out-of-distribution gate's statistics)
and ``bundle.json`` (label spec, what the network reads, calibration, OOD parameters, measured figures, a
self-test, file hashes, integrity). Loads with ONNX Runtime and numpy alone.

Two inputs, one format:

* ``beats``: heartbeat windows cut around R-peaks (ONNX inputs ``wave`` and ``rr``; ``window`` says how the
  beats are cut), multi-class, with a temperature and class-conditional conformal sets;
* ``record``: a whole multi-lead recording (ONNX input ``signal`` (n, leads, samples); ``window`` gives the
  rate and length, ``leads`` their order), multi-label, with per-condition temperatures, decision thresholds
  and conformal risk control (:class:`carelens.calibrate.MultilabelCalibrator`).

Format 2 added the record input; format 3 the ``decision`` a record model ships (its decision rule, chosen on
validation to meet the critical-miss target). Formats 1 (beats only) and 2 still load, deciding by the default policy.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, model_validator

from carelens.bundle._folder import bundle_folder
from carelens.bundle._load import make_session
from carelens.bundle._manifest import DecisionParams, Identified, ManifestHead
from carelens.calibrate import ConformalClassifier, MultilabelCalibrator, OODGate, TemperatureScaler
from carelens.errors import BundleError
from carelens.hashing import file_digest, integrity_digest
from carelens.labels import LabelSpec
from carelens.metrics import softmax
from carelens.policy import DecisionPolicy
from carelens.signing import verify_signature

__all__ = ["SIGNAL_FORMAT", "SignalBundle", "SignalSpec", "is_signal", "write_signal_bundle"]

SIGNAL_FORMAT = 3  # 3 added ``decision``; 2 ``input: record`` (multi-label recordings); 1 (beats) and 2 still load
FILES = ("model.onnx", "ood.npz")
INPUTS = {"beats": ("wave", "rr"), "record": ("signal",)}  # the ONNX inputs of each kind, in order


class SignalSpec(ManifestHead):
    task: Literal["signal"] = "signal"
    input: Literal["beats", "record"] = "beats"
    window: dict[str, float] = Field(description="beats: fs, before_s, after_s (carelens.ecg); record: fs, seconds")
    leads: list[str] = Field(default_factory=list, description="record: the leads the network reads, in order")
    temperature: float = 1.0  # beats
    conformal: dict[str, Any] | None = None  # beats: ConformalClassifier.to_dict
    multilabel: dict[str, Any] | None = None  # record: MultilabelCalibrator.to_dict
    decision: DecisionParams | None = None  # record: the decision settings it ships (None: the default policy)
    ood: dict[str, Any]
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    selftest: dict[str, Any]  # {"inputs": {onnx input: nested list}, "logits": [...]}
    files: dict[str, str]
    versions: dict[str, str] = Field(default_factory=dict)
    integrity: str = ""

    @model_validator(mode="after")
    def _calibrated(self) -> SignalSpec:
        if self.input == "beats" and self.conformal is None:
            raise ValueError("a beats bundle needs its `conformal` section")
        if self.input == "record" and (self.multilabel is None or not self.leads):
            raise ValueError("a record bundle needs its `multilabel` and `leads` sections")
        return self


def _upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest (beats only, self-test as ``waves``/``rr``) in format 2's terms; the integrity was
    already checked on the original."""
    if raw.get("format_version") != 1:
        return raw
    st = raw["selftest"]
    return {**raw, "input": "beats", "selftest": {"inputs": {"wave": st["waves"], "rr": st["rr"]}, "logits": st["logits"]}}


@dataclass
class SignalBundle(Identified):
    path: Path
    spec: SignalSpec
    session: Any  # onnxruntime.InferenceSession
    ood: OODGate
    temperature: TemperatureScaler | None = None  # beats
    conformal: ConformalClassifier | None = None  # beats
    multilabel: MultilabelCalibrator | None = None  # record

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None,
             trusted_keys: dict[str, Ed25519PublicKey] | None = None) -> SignalBundle:
        """``trusted_keys``: when given, the bundle must be signed by one of them (as for image bundles)."""
        folder = Path(path)
        f = folder / "bundle.json"
        if not f.is_file():
            raise BundleError(f"{folder} is not a bundle: bundle.json is missing")
        if trusted_keys is not None:
            verify_signature(folder, trusted_keys)
        raw = json.loads(f.read_text(encoding="utf-8"))
        if raw.get("task") != "signal" or raw.get("format_version") not in range(1, SIGNAL_FORMAT + 1):
            raise BundleError(f"{f} is not a signal bundle of format 1 to {SIGNAL_FORMAT} (found format "
                              f"{raw.get('format_version')!r}); a newer carelens wrote it, or it is another kind of bundle")
        if raw.get("integrity") != integrity_digest(raw):
            raise BundleError(f"{f} was modified after export (integrity check failed); re-export it")
        spec = SignalSpec.model_validate(_upgraded(raw))
        for name in FILES:
            if not (folder / name).is_file() or file_digest(folder / name) != spec.files.get(name):
                raise BundleError(f"{name} in {folder} is missing or does not match its recorded sha256; re-export it")
        beats = spec.input == "beats"
        b = cls(folder, spec, make_session(folder / "model.onnx", threads), OODGate.from_dict(spec.ood, folder / "ood.npz"),
                temperature=TemperatureScaler.from_dict({"temperature": spec.temperature}) if beats else None,
                conformal=ConformalClassifier.from_dict(spec.conformal) if spec.conformal is not None else None,
                multilabel=MultilabelCalibrator.from_dict(spec.multilabel) if spec.multilabel is not None else None)
        st = spec.selftest
        logits, _ = b.outputs({k: np.asarray(v, np.float32) for k, v in st["inputs"].items()})
        if not np.allclose(logits, np.asarray(st["logits"]), atol=1e-3):
            raise BundleError(f"{folder}: the self-test inputs give other outputs than at export (max difference "
                              f"{np.abs(logits - np.asarray(st['logits'])).max():.2g})")
        return b

    def policy(self, **overrides: Any) -> DecisionPolicy:
        """The decision policy the bundle ships (the default one before format 3), any non-None override applied."""
        return (self.spec.decision or DecisionParams()).policy(**overrides)

    def outputs(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) for the ONNX inputs of this bundle's kind (:data:`INPUTS`)."""
        wanted = INPUTS[self.spec.input]
        if set(feeds) != set(wanted):
            raise BundleError(f"{self.name} reads {', '.join(wanted)}, not {', '.join(feeds)}")
        out = self.session.run(["logits", "features"], {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()})
        return out[0], out[1]

    def run(self, waves: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) for beat windows (n, channels, L) and RR features (n, k)."""
        return self.outputs({"wave": waves, "rr": rr})

    def classify(self, waves: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beats: (calibrated probabilities (n, k), conformal set masks (n, k), in distribution (n,))."""
        if self.conformal is None or self.temperature is None:
            raise BundleError(f"{self.name} reads whole recordings, not beats")
        logits, feats = self.run(waves, rr)
        proba = softmax(logits, self.temperature.temperature_)
        return proba, self.conformal.predict_set(proba), self.ood.is_in_distribution(feats, logits)

    def classify_records(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Recordings (n, leads, samples) as the bundle's ``window`` and ``leads`` say: (calibrated probability per
        condition (n, K), present (n, K), kept by risk control (n, K), in distribution (n,), OOD p-value (n,))."""
        if self.multilabel is None:
            raise BundleError(f"{self.name} classifies heartbeats, not whole recordings")
        logits, feats = self.outputs({"signal": x})
        proba = self.multilabel.predict_proba(logits)
        score = self.ood.score(feats, logits)
        return (proba, self.multilabel.present(proba), self.multilabel.kept(proba), score <= self.ood.threshold_,
                self.ood.p_value_of(score))


def is_signal(path: str | Path) -> bool:
    f = Path(path) / "bundle.json"
    try:
        return f.is_file() and json.loads(f.read_text(encoding="utf-8")).get("task") == "signal"
    except (OSError, ValueError, AttributeError):
        return False


def write_signal_bundle(out: Path, onnx_path: Path, gate: OODGate, *, name: str, version: str, spec: LabelSpec,
                        window: dict[str, float], selftest: dict[str, np.ndarray], metrics: dict[str, Any],
                        training: dict[str, Any], temperature: TemperatureScaler | None = None,
                        conformal: ConformalClassifier | None = None, multilabel: MultilabelCalibrator | None = None,
                        leads: list[str] | None = None, versions: dict[str, str] | None = None,
                        decision: DecisionParams | None = None) -> Path:
    """Write ``out/`` (model.onnx copied, ood.npz saved, bundle.json sealed) and load it back (self-test), built beside
    it and moved into place only then (:func:`bundle_folder`).
    ``selftest``: a few inputs by ONNX input name (``wave`` + ``rr`` for beats, ``signal`` for recordings);
    ``decision``: the decision settings a record model ships."""
    kind = "record" if "signal" in selftest else "beats"
    with bundle_folder(out) as folder:  # built beside it; replaces an old bundle only once this one loads
        shutil.copy(onnx_path, folder / "model.onnx")
        gate.save(folder / "ood.npz")
        feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in selftest.items()}
        logits, _ = make_session(folder / "model.onnx").run(["logits", "features"], feeds)
        doc: dict[str, Any] = {
            "format_version": SIGNAL_FORMAT, "task": "signal", "input": kind, "name": name, "version": version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "intended_use": spec.description.strip(),
            "label_spec": spec.model_dump(mode="json", by_alias=True), "class_ids": spec.class_ids, "window": window,
            "leads": list(leads or []), "temperature": float(temperature.temperature_) if temperature is not None else 1.0,
            "conformal": conformal.to_dict() if conformal is not None else None,
            "multilabel": multilabel.to_dict() if multilabel is not None else None, "ood": gate.to_dict(),
            "decision": decision.model_dump(mode="json") if decision is not None else None,
            "metrics": metrics, "training": training,
            "selftest": {"inputs": {k: v.tolist() for k, v in feeds.items()}, "logits": logits.tolist()},
            "files": {f: file_digest(folder / f) for f in FILES}, "versions": dict(versions or {}),
        }
        doc = json.loads(json.dumps(doc))
        doc["integrity"] = integrity_digest(doc)
        (folder / "bundle.json").write_text(json.dumps(doc), encoding="utf-8")
        SignalBundle.load(folder)
    return out
