"""Clinical tables (heart disease, horse colic) and the Kaggle symptom table: honest folds, real numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carelens.symptoms import (
    HEART,
    HORSE_COLIC,
    cross_validate,
    load_heart,
    load_horse_colic,
    load_kaggle_table,
    split_patterns,
)


def test_heart_disease_model_is_calibrated_and_discriminates(data_dir: Path) -> None:
    rows, y = load_heart(data_dir / "uci_heart_disease")
    assert len(rows) == 303 and 0.4 < y.mean() < 0.5
    assert sum(r["ca"] is None for r in rows) == 4 and sum(r["thal"] is None for r in rows) == 2  # kept, not dropped
    res = cross_validate(rows, y, HEART["numeric"], HEART["categorical"])
    assert np.allclose(res["proba"].sum(1), 1) and set(res["fold"]) == {0, 1, 2, 3, 4}
    for f in range(5):  # stratified: every fold has both outcomes at about the base rate
        assert abs(y[res["fold"] == f].mean() - y.mean()) < 0.05
    assert res["auc"] >= 0.88 and res["brier"] < 0.15 and res["ece"] < 0.1


def test_horse_colic_folds_never_share_a_horse(data_dir: Path) -> None:
    rows, y, hospital = load_horse_colic(data_dir / "veterinary" / "uci_horse_colic")
    assert len(rows) == len(y) == len(hospital) and len(set(hospital)) < len(hospital)  # repeated hospital numbers
    assert any(v is None for r in rows for v in r.values())  # missing values are there, and kept
    used = HORSE_COLIC["numeric"] + HORSE_COLIC["categorical"]
    assert "surgical_lesion" not in used and "lesion_1" not in used  # known only after surgery: would leak
    assert "hospital_number" not in rows[0]
    res = cross_validate(rows, y, HORSE_COLIC["numeric"], HORSE_COLIC["categorical"], groups=hospital)
    folds_of = {}
    for h, f in zip(hospital, res["fold"], strict=True):
        folds_of.setdefault(h, set()).add(int(f))
    assert all(len(f) == 1 for f in folds_of.values())
    assert np.allclose(res["proba"].sum(1), 1) and res["auc"] > 0.7


def test_symptom_patterns_are_held_out_whole(data_dir: Path) -> None:
    t = load_kaggle_table(data_dir / "symptom_disease_kaggle41")
    tr, va, te = split_patterns(t.X, t.y)
    patterns = [{tuple(row) for row in t.X[idx]} for idx in (tr, va, te)]
    assert not (patterns[0] & patterns[1]) and not (patterns[0] & patterns[2]) and not (patterns[1] & patterns[2])
    assert sum(len(p) for p in patterns) == len(t.X)
