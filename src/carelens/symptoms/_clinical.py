"""Readers for the clinical tables: UCI heart disease (Cleveland) and UCI horse colic (veterinary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from carelens.errors import DataError

__all__ = ["HEART", "HORSE_COLIC", "load_heart", "load_horse_colic"]

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
