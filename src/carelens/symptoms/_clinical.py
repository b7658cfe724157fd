"""Readers for the clinical tables: UCI heart disease (Cleveland) and UCI horse colic (veterinary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carelens.errors import DataError
from carelens.fusion import TabularModel
from carelens.metrics import expected_calibration_error

__all__ = ["HEART", "HORSE_COLIC", "cross_validate", "load_heart", "load_horse_colic"]

HEART = {
    "columns": ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope",
                "ca", "thal", "num"],
    "numeric": ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"],
    "categorical": ["sex", "cp", "fbs", "restecg", "exang", "slope", "thal"],
}

HORSE_COLIC = {
    "columns": ["surgery", "age", "hospital_number", "rectal_temp", "pulse", "respiratory_rate", "temp_extremities",
                "peripheral_pulse", "mucous_membrane", "capillary_refill_time", "pain", "peristalsis",
                "abdominal_distention", "nasogastric_tube", "nasogastric_reflux", "nasogastric_reflux_ph",
                "rectal_exam_feces", "abdomen", "packed_cell_volume", "total_protein", "abdomcentesis_appearance",
                "abdomcentesis_total_protein", "outcome", "surgical_lesion", "lesion_1", "lesion_2", "lesion_3",
                "cp_data"],
    "numeric": ["rectal_temp", "pulse", "respiratory_rate", "nasogastric_reflux_ph", "packed_cell_volume",
                "total_protein", "abdomcentesis_total_protein"],
    # surgical_lesion and lesion codes are known only after surgery or necropsy: left out (they leak the outcome)
    "categorical": ["surgery", "age", "temp_extremities", "peripheral_pulse", "mucous_membrane",
                    "capillary_refill_time", "pain", "peristalsis", "abdominal_distention", "nasogastric_tube",
                    "nasogastric_reflux", "rectal_exam_feces", "abdomen", "abdomcentesis_appearance"],
}


def _value(v: str) -> Any:
    v = v.strip()
    if v in ("?", ""):
        return None
    try:
        return float(v)
    except ValueError:
        return v


def load_heart(root: Path, site: str = "cleveland") -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows of facts and the target ``num > 0`` (heart disease present). '?' becomes None (missing)."""
    path = root / f"processed.{site}.data"
    if not path.is_file():
        raise DataError(f"{path} not found; set CARELENS_DATA to the folder holding uci_heart_disease")
    rows, y = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        vals = [_value(v) for v in line.split(",")]
        row = dict(zip(HEART["columns"], vals, strict=True))
        y.append(int(float(row.pop("num")) > 0))
        rows.append(row)
    return rows, np.asarray(y)


def load_horse_colic(root: Path) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Train + test rows with a known outcome; target 1 = died or euthanised; groups = hospital number."""
    files = [root / "horse-colic.data", root / "horse-colic.test"]
    if not files[0].is_file():
        raise DataError(f"{files[0]} not found; set CARELENS_DATA to the folder holding veterinary/uci_horse_colic")
    rows, y, groups = [], [], []
    for f in files:
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) != 28 or parts[0].lower().startswith("surg"):
                continue  # the test file's copy has a one-line header
            row = dict(zip(HORSE_COLIC["columns"], [_value(v) for v in parts], strict=True))
            outcome = row.pop("outcome")
            if outcome is None:
                continue  # unknown outcome: cannot be a training target (2 rows)
            y.append(int(outcome != 1.0))
            groups.append(str(row.pop("hospital_number")))
            rows.append(row)
    return rows, np.asarray(y), np.asarray(groups)


def cross_validate(rows: Sequence[Mapping[str, Any]], y: np.ndarray, numeric: Sequence[str], categorical: Sequence[str],
                   *, groups: Sequence[str] | np.ndarray | None = None, folds: int = 5, seed: int = 0,
                   C: float = 0.3) -> dict[str, Any]:
    """Out-of-fold probabilities of a :class:`TabularModel` and their metrics.

    Folds are stratified, or grouped when ``groups`` is given (a horse's hospital number, a patient id):
    no group is in two folds, so a repeated patient cannot be both trained on and tested.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, roc_auc_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    y = np.asarray(y, dtype=np.int64)
    k = int(y.max()) + 1
    if groups is not None:
        splits = GroupKFold(folds).split(rows, y, np.asarray(groups))
    else:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows, y)
    proba, fold = np.zeros((len(y), k)), np.full(len(y), -1)
    for f, (tr, te) in enumerate(splits):
        m = TabularModel(numeric, categorical, C=C).fit([rows[i] for i in tr], y[tr], k)
        proba[te] = m.predict_proba([rows[i] for i in te])
        fold[te] = f
    pred = proba.argmax(1)
    out: dict[str, Any] = {"proba": proba, "fold": fold, "accuracy": float(accuracy_score(y, pred)),
                           "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
                           "ece": expected_calibration_error(proba, y, 10)[0]}
    if k == 2:
        out["auc"] = float(roc_auc_score(y, proba[:, 1]))
        out["brier"] = float(brier_score_loss(y, proba[:, 1]))
    return out
