"""The run folder: one object owns its file names, its typed config and every artifact in it.

Training writes it (config, split, checkpoints, predictions, metrics, curves); calibration adds its
fitted objects (calibration.json, ood.npz, reliability.png); export reads it all. Callers ask the
:class:`Run` (``run.config``, ``run.best_checkpoint``, ``run.write_calibration(...)``), never join a
file name themselves, so a renamed file changes one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from carelens.calibrate import ConformalClassifier, MultilabelCalibrator, OODGate, TemperatureScaler
from carelens.config import TrainConfig
from carelens.data import Dataset, Splits, open_dataset, read_split_document
from carelens.errors import DataError
from carelens.hashing import file_digest
from carelens.labels import LabelSpec
from carelens.preprocess import PreprocessConfig

__all__ = ["Calibration", "DatasetRef", "Predictions", "Run", "RunConfig"]


@dataclass(frozen=True)
class DatasetRef:
    """Which data a run was trained on: enough to open it again and to know it is the same."""

    name: str
    fingerprint: str
    n: int
    source: str  # a path or a public set name, as open_dataset takes it


@dataclass(frozen=True)
class RunConfig:
    """config.json: the recipe, the classes, the data and its label spec."""

    train: TrainConfig
    class_ids: list[str]
    dataset: DatasetRef
    spec: LabelSpec | None = None

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.train.preprocess

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.to_dict(), "class_ids": self.class_ids, "dataset": vars(self.dataset),
                "spec": self.spec.to_dict() if self.spec else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        train = dict(d["train"])
        if "preprocess" not in train and "preprocess" in d:  # runs written before the recipe held its preprocessing
            train["preprocess"] = d["preprocess"]
        return cls(train=TrainConfig.from_dict(train), class_ids=list(d["class_ids"]),
                   dataset=DatasetRef(**d["dataset"]), spec=LabelSpec.model_validate(d["spec"]) if d.get("spec") else None)


@dataclass(frozen=True)
class Predictions:
    """predictions.npz: the best model's outputs on each split (features model the data for the OOD gate)."""

    train_logits: np.ndarray
    train_features: np.ndarray
    train_y: np.ndarray
    val_logits: np.ndarray
    val_features: np.ndarray
    val_y: np.ndarray
    val_ids: np.ndarray
    test_logits: np.ndarray | None = None
    test_features: np.ndarray | None = None
    test_y: np.ndarray | None = None
    test_ids: np.ndarray | None = None

    @property
    def has_test(self) -> bool:
        return self.test_logits is not None


@dataclass
class Calibration:
    """What the calibrate step fitted on validation data, and its report (calibration.json).

    Multiclass: ``temperature`` and ``conformal``; multi-label: ``multilabel`` (per-condition temperatures and
    thresholds, conformal risk control). Both: the OOD gate."""

    ood: OODGate
    report: dict[str, Any]
    temperature: TemperatureScaler | None = None
    conformal: ConformalClassifier | None = None
    multilabel: MultilabelCalibrator | None = None

    @property
    def finding_weights(self) -> tuple[float, ...] | None:
        """The class a multi-class model calls: probability x these weights (None: the most probable)."""
        w = (self.report.get("finding_weights") or {}).get("weights")
        return tuple(float(v) for v in w) if w is not None else None

    def bundle_record(self) -> dict[str, Any]:
        """What a bundle keeps of the report: the test figures (without reliability curves), and the price of
        safety per conformal level and per decision rule, for the deployer."""
        out = {k: v for k, v in (self.report.get("test") or {}).items() if not k.startswith("reliability")}
        for key in ("operating_points", "decision_rule", "finding_weights"):
            if key in self.report:
                out[key] = self.report[key]
        return out


class Run:
    """A training run folder. Creating the object touches nothing on disk."""

    CONFIG = "config.json"
    SPLITS = "splits.json"
    PREDICTIONS = "predictions.npz"
    METRICS = "metrics.json"
    CURVES = "curves.png"
    BEST = "best.pt"
    LAST = "last.pt"
    CALIBRATION = "calibration.json"
    OOD = "ood.npz"
    RELIABILITY = "reliability.png"
    OPERATING_POINTS = "operating_points.png"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def best_checkpoint(self) -> Path:
        return self.file(self.BEST)

    @property
    def last_checkpoint(self) -> Path:
        return self.file(self.LAST)

    @property
    def ood_path(self) -> Path:
        return self.file(self.OOD)

    def require(self, *names: str, step: str) -> None:
        """DataError naming what is missing and the step that makes it."""
        missing = [n for n in names if not self.file(n).is_file()]
        if missing:
            raise DataError(f"{self.path} has no {', '.join(missing)}; run `carelens {step}` first")

    # -- training writes -----------------------------------------------------------------------------
    def create(self) -> Run:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, config: RunConfig) -> None:
        self.file(self.CONFIG).write_text(json.dumps(config.to_dict(), indent=1))
        self.__dict__.pop("config", None)

    def write_splits(self, splits: Splits, ds: Dataset) -> None:
        splits.save(self.file(self.SPLITS), ds)
        self.__dict__.pop("split_document", None)

    def write_predictions(self, p: Predictions, *, compress: bool = True) -> None:
        """``compress=False`` for a scratch run read back once (compressing the features: about 5 s a HAM10000 run,
        for half the size)."""
        arrays = {f.name: getattr(p, f.name) for f in fields(p) if getattr(p, f.name) is not None}
        (np.savez_compressed if compress else np.savez)(self.file(self.PREDICTIONS), **arrays)

    def write_metrics(self, doc: dict[str, Any]) -> None:
        self.file(self.METRICS).write_text(json.dumps(doc, indent=1))

    def write_curves(self, png: bytes) -> None:
        self.file(self.CURVES).write_bytes(png)

    # -- reading back ----------------------------------------------------------------------------------
    @cached_property
    def config(self) -> RunConfig:
        self.require(self.CONFIG, step="train")
        return RunConfig.from_dict(json.loads(self.file(self.CONFIG).read_text()))

    @cached_property
    def split_document(self) -> dict[str, Any]:
        self.require(self.SPLITS, step="train")
        return read_split_document(self.file(self.SPLITS))

    def splits(self) -> Splits:
        return Splits.from_dict(self.split_document, f"split file {self.file(self.SPLITS)}")

    def data(self) -> tuple[Dataset, Splits]:
        """The run's data (with its label spec), restricted to the examples its split assigns, checked."""
        source = self.config.dataset.source
        splits = self.splits()
        return splits.covered(open_dataset(source, self.config.spec), f"split file {self.file(self.SPLITS)}"), splits

    def predictions(self) -> Predictions:
        if not self.file(self.PREDICTIONS).is_file():
            raise DataError(f"{self.path} is not a finished training run (config.json and predictions.npz are "
                            "needed); run `carelens train` first")
        with np.load(self.file(self.PREDICTIONS)) as z:
            arrays = {k: z[k] for k in z.files}
        if "train_features" not in arrays:
            raise DataError(f"{self.file(self.PREDICTIONS)} has no training features (made by an older carelens); "
                            "re-run training")
        return Predictions(**arrays)

    def metrics(self) -> dict[str, Any]:
        self.require(self.METRICS, step="train")
        return json.loads(self.file(self.METRICS).read_text())  # type: ignore[no-any-return]

    # -- calibration -----------------------------------------------------------------------------------
    def write_calibration(self, cal: Calibration, reliability_png: bytes, operating_points_png: bytes | None = None) -> None:
        # the training outputs it was fitted on, so that a retrained model never ships with this calibration
        cal.report["fitted_on"] = file_digest(self.file(self.PREDICTIONS))
        self.file(self.CALIBRATION).write_text(json.dumps(cal.report, indent=1))
        cal.ood.save(self.ood_path)
        self.file(self.RELIABILITY).write_bytes(reliability_png)
        if operating_points_png is not None:
            self.file(self.OPERATING_POINTS).write_bytes(operating_points_png)

    def clear_calibration(self) -> None:
        """Remove what `calibrate` wrote (before a new model is trained here)."""
        for name in (self.CALIBRATION, self.OOD, self.RELIABILITY, self.OPERATING_POINTS):
            self.file(name).unlink(missing_ok=True)

    def calibration(self) -> Calibration:
        if not self.file(self.CALIBRATION).is_file():
            raise DataError(f"{self.path} has no calibration.json; run `carelens calibrate {self.path}` first")
        rep = json.loads(self.file(self.CALIBRATION).read_text())
        fitted_on = rep.get("fitted_on")  # absent in calibrations written before it was recorded
        if fitted_on is not None and file_digest(self.file(self.PREDICTIONS)) != fitted_on:
            raise DataError(f"{self.file(self.CALIBRATION)} was fitted on another model's outputs ({self.PREDICTIONS} "
                            f"changed since: retrained?); run `carelens calibrate {self.path}` again")
        ood = OODGate.from_dict(rep["ood"], self.ood_path)
        if "multilabel" in rep:
            return Calibration(ood, rep, multilabel=MultilabelCalibrator.from_dict(rep["multilabel"]))
        return Calibration(ood, rep, TemperatureScaler.from_dict(rep), ConformalClassifier.from_dict(rep["conformal"]))
