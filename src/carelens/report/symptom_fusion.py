"""`carelens symptoms fuse`: fit an image bundle + symptom bundle fusion on paired cases and measure it.

The pairs are a manifest (``path, label, symptoms, split``): each row a case with a photo and what was
reported (symptom ids separated by ``;``, empty when nothing was). The image bundle assesses every photo
once (:func:`~carelens.report.evaluate`); the fusion weights and the fused conformal threshold are fitted on
the ``val`` rows; the ``test`` rows, read once, give image alone / symptoms alone / fused figures. The fitted
fusion goes into the symptom bundle, keyed by the image model's name and version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from carelens.bundle import Bundle
from carelens.data import make_splits, open_dataset
from carelens.errors import DataError
from carelens.report.evaluate import Evaluation, evaluate
from carelens.symptoms import ImageSymptomFusion, SymptomBundle, clean_symptom_name

__all__ = ["fit_symptom_fusion"]


def _symptom_arrays(sym: SymptomBundle, reports: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """(symptom model probabilities (n, m), reported (n,)); an unknown symptom id is an error naming it."""
    rows, reported = [], []
    for told in reports:
        ids = [clean_symptom_name(s) for s in told]
        rows.append(sym.proba(ids))  # DataError naming an id the vocabulary lacks
        reported.append(bool(ids))
    return np.asarray(rows), np.asarray(reported, bool)


def fit_symptom_fusion(symptoms_dir: str | Path, bundle: Bundle, pairs: str | Path, *, save: bool = True,
                       progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Fit on the pairs' val rows, measure on their test rows (when there are any), keep the fusion in the
    symptom bundle (``save``). Returns the figures (``balanced_accuracy_image/_symptoms/_fused`` ...)."""
    sym = SymptomBundle.load(symptoms_dir)
    spec = bundle.labels
    if spec.multilabel:
        raise DataError(f"model {bundle.name} is multi-label; symptom fusion is for multi-class image models")
    if sym.spec.species and spec.species and not set(sym.spec.species) & set(spec.species):
        raise DataError(f"the symptom bundle is for {', '.join(sym.spec.species)} and model {bundle.name} for "
                        f"{', '.join(spec.species)}: fuse models of the same species")
    ds = open_dataset(pairs, spec)
    if not ds.has_official_split:
        raise DataError(f"{pairs} needs a 'split' column: its val rows fit the fusion weights, its test rows measure "
                        "them (cases the image model was trained on must not be in either)")
    splits = make_splits(ds)
    fusion = ImageSymptomFusion(spec.class_ids, sym.spec.class_ids, sym.prior,
                                image_model=bundle.ref, conformal=bundle.conformal)

    def assessed(split: str) -> tuple[Evaluation, np.ndarray, np.ndarray]:
        ev = evaluate(bundle, ds, splits, split=split, progress=progress)
        by_id = {e.id: e for e in ds}
        sp, reported = _symptom_arrays(sym, [by_id[i].symptoms for i in ev.ids])
        return ev, sp, reported

    val, sp_val, rep_val = assessed("val")
    if not rep_val.any():
        raise DataError(f"no val row of {pairs} reports a symptom; the fusion weight cannot be fitted")
    fusion.fit(val.arrays["proba"], sp_val, val.arrays["y"], rep_val)
    figures: dict[str, Any] = {"pairs": str(pairs), "val_cases": len(val.ids), "weight_symptoms": fusion.weight,
                               "symptom_bundle": sym.doc["name"], "synthetic_symptoms": bool(sym.doc.get("synthetic"))}
    if splits.indices(ds, "test"):
        test, sp_test, rep_test = assessed("test")
        figures["test"] = fusion.measure(test.arrays["proba"], test.arrays["in_set"].astype(bool), sp_test,
                                         test.arrays["y"], spec, rep_test, test.arrays["in_distribution"].astype(bool),
                                         policy=bundle.policy())
        figures["test"]["reported_share"] = float(rep_test.mean())
    if save:
        sym.save_fusion(fusion, figures)
    return figures
