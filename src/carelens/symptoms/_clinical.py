"""Readers for the clinical tables: UCI heart disease (Cleveland) and UCI horse colic (veterinary)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carelens.errors import DataError
from carelens.fusion import TabularModel
from carelens.metrics import expected_calibration_error

__all__ = ["HEART", "HEART_INPUTS", "HORSE_COLIC", "HORSE_COLIC_INPUTS", "cross_validate", "load_heart", "load_horse_colic"]

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
                   C: float = 0.3, on_fold: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Out-of-fold probabilities of a :class:`TabularModel` and their metrics (``on_fold(1)`` after each fold: a
    progress bar's ``advance``).

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
        if on_fold is not None:
            on_fold(1)
    pred = proba.argmax(1)
    out: dict[str, Any] = {"proba": proba, "fold": fold, "accuracy": float(accuracy_score(y, pred)),
                           "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
                           "ece": expected_calibration_error(proba, y, 10)[0]}
    if k == 2:
        out["auc"] = float(roc_auc_score(y, proba[:, 1]))
        out["brier"] = float(brier_score_loss(y, proba[:, 1]))
    return out


# What each input of the shipped clinical tables means, its unit, the range a bundle accepts (physiological
# limits, wider than the data), the friendlier names people send, and which inputs a request must give.
HEART_INPUTS: list[dict[str, Any]] = [
    {"name": "age", "type": "number", "unit": "years", "min": 1, "max": 120, "required": True, "description": "age"},
    {"name": "sex", "type": "category", "required": True, "description": "sex",
     "value_names": {"female": "0.0", "male": "1.0"}},
    {"name": "cp", "type": "category", "required": True, "aliases": ["chest_pain", "chest_pain_type"],
     "description": "chest pain type", "value_names": {"typical_angina": "1.0", "atypical_angina": "2.0",
                                                         "non_anginal_pain": "3.0", "asymptomatic": "4.0"}},
    {"name": "trestbps", "type": "number", "unit": "mmHg", "min": 60, "max": 260, "required": True,
     "aliases": ["blood_pressure", "resting_blood_pressure"], "description": "resting systolic blood pressure"},
    {"name": "chol", "type": "number", "unit": "mg/dl", "min": 80, "max": 700, "required": True,
     "aliases": ["cholesterol"], "description": "serum cholesterol"},
    {"name": "fbs", "type": "category", "aliases": ["fasting_blood_sugar"],
     "description": "fasting blood sugar above 120 mg/dl", "value_names": {"no": "0.0", "yes": "1.0"}},
    {"name": "restecg", "type": "category", "aliases": ["resting_ecg"], "description": "resting ECG",
     "value_names": {"normal": "0.0", "st_t_abnormality": "1.0", "left_ventricular_hypertrophy": "2.0"}},
    {"name": "thalach", "type": "number", "unit": "bpm", "min": 50, "max": 230, "required": True,
     "aliases": ["max_heart_rate"], "description": "maximum heart rate reached in the exercise test"},
    {"name": "exang", "type": "category", "required": True, "aliases": ["exercise_angina"],
     "description": "angina brought on by exercise", "value_names": {"no": "0.0", "yes": "1.0"}},
    {"name": "oldpeak", "type": "number", "unit": "mm", "min": -3, "max": 10, "aliases": ["st_depression"],
     "description": "ST depression induced by exercise relative to rest"},
    {"name": "slope", "type": "category", "aliases": ["st_slope"], "description": "slope of the peak exercise ST segment",
     "value_names": {"upsloping": "1.0", "flat": "2.0", "downsloping": "3.0"}},
    {"name": "ca", "type": "number", "unit": "vessels", "min": 0, "max": 3, "aliases": ["major_vessels"],
     "description": "major vessels coloured by fluoroscopy"},
    {"name": "thal", "type": "category", "aliases": ["thallium_stress_test"],
     "description": "thallium stress test", "value_names": {"normal": "3.0", "fixed_defect": "6.0",
                                                            "reversible_defect": "7.0"}},
]

HORSE_COLIC_INPUTS: list[dict[str, Any]] = [
    {"name": "rectal_temp", "type": "number", "unit": "°C", "min": 33, "max": 43, "aliases": ["temperature"],
     "description": "rectal temperature"},
    {"name": "pulse", "type": "number", "unit": "beats/min", "min": 20, "max": 220, "required": True,
     "aliases": ["heart_rate"], "description": "heart rate"},
    {"name": "respiratory_rate", "type": "number", "unit": "breaths/min", "min": 4, "max": 120,
     "description": "respiratory rate"},
    {"name": "nasogastric_reflux_ph", "type": "number", "unit": "pH", "min": 0, "max": 14,
     "description": "pH of the nasogastric reflux"},
    {"name": "packed_cell_volume", "type": "number", "unit": "%", "min": 10, "max": 90, "aliases": ["pcv"],
     "description": "packed cell volume"},
    {"name": "total_protein", "type": "number", "unit": "g/dl or g/l (as recorded)", "min": 1, "max": 120,
     "description": "total protein"},
    {"name": "abdomcentesis_total_protein", "type": "number", "unit": "g/dl", "min": 0, "max": 15,
     "description": "total protein of the abdominal fluid"},
    {"name": "surgery", "type": "category", "description": "treated surgically",
     "value_names": {"yes": "1.0", "no": "2.0"}},
    {"name": "age", "type": "category", "description": "adult or foal", "value_names": {"adult": "1.0", "young": "9.0"}},
    {"name": "pain", "type": "category", "required": True, "description": "pain, 1 alert and pain-free to 5 intermittent severe pain"},
    *({"name": n, "type": "category", "description": n.replace("_", " ") + " (UCI code)"} for n in
      ("temp_extremities", "peripheral_pulse", "mucous_membrane", "capillary_refill_time", "peristalsis",
       "abdominal_distention", "nasogastric_tube", "nasogastric_reflux", "rectal_exam_feces", "abdomen",
       "abdomcentesis_appearance")),
]
