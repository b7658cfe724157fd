"""A clinical (tabular) bundle measured on a labelled table of cases it was not built from (external validation:
another clinic, another period): every row assessed as the service would, the same figures as an image model's
evaluation (balanced accuracy, per-class recall, AUC, calibration, conformal coverage, critical-miss beside
over-triage at the bundle's own decision rule) beside the bundle's cross-validated figures at build, and the rows
the bundle refused (an input out of range, a required input missing), listed, not dropped in silence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from carelens.bundle import TabularBundle
from carelens.errors import DataError, FactsError
from carelens.labels import triage_rank
from carelens.metrics import softmax
from carelens.policy import triage_levels
from carelens.report.evaluate import metrics_from_predictions

__all__ = ["BUILT_FROM_THESE", "TableEvaluation", "evaluate_table"]


@dataclass
class TableEvaluation:
    bundle: TabularBundle
    source: str
    metrics: dict[str, Any]
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"row": n, "reason": ...}


BUILT_FROM_THESE = ("these are the rows the bundle was built from (the same file): its figures on them are "
                    "optimistic; the cross-validated figures at build are the honest ones. Evaluate on cases it has "
                    "not seen")


def evaluate_table(bundle: TabularBundle, rows: Sequence[Mapping[str, Any]], y: np.ndarray, *, source: str,
                   first_row: int = 2, data_sha256: str | None = None) -> TableEvaluation:
    """Assess every row (``y``: its outcome, an index into the bundle's classes) and measure the answers.
    ``first_row``: the number shown for the first row in the refusals (2: a CSV's first line after its header);
    ``data_sha256``: the table file's digest, to say so when it is the file the bundle was built from."""
    checked, kept, refused = [], [], []
    for n, row in enumerate(rows):
        given = {k: v for k, v in row.items() if v is not None}
        try:
            checked.append(bundle.check(given))
            kept.append(n)
        except FactsError as exc:
            refused.append({"row": n + first_row, "reason": str(exc).split(". Accepted inputs:")[0]})
    if not checked:
        raise DataError(f"{source}: the bundle refused every row (first: row {refused[0]['row']}: "
                        f"{refused[0]['reason']}); check the column names and units against the bundle's inputs")
    yy = np.asarray(y)[kept]
    logits = bundle.logits(checked)
    proba = bundle.temperature.predict_proba(logits)  # bundle.proba, without computing the logits again
    in_set = bundle.conformal.predict_set(proba)
    inside = np.ones(len(yy), dtype=bool)  # a table has no OOD gate: the input checks refuse what is out of range
    levels = triage_levels(proba, in_set, inside, bundle.labels, policy=bundle.policy())
    spec = bundle.labels
    pred = {"y": yy, "proba": proba, "proba_raw": softmax(logits), "in_set": in_set, "in_distribution": inside,
            "triage_rank": np.asarray([triage_rank(lv) for lv in levels])}
    m = metrics_from_predictions(pred, spec, coverage_target=1 - bundle.conformal.alpha)
    m.pop("ood_pass_rate")  # no gate to pass
    k = len(spec.classes)
    built = bundle.spec.metrics.get("per_class") or {}
    m.update({
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "source": source,
        "bundle": {"name": bundle.name, "version": bundle.version},
        "rows": len(rows), "assessed": len(kept), "refused": len(refused),
        "prevalence": dict(zip(spec.class_ids, (np.bincount(yy, minlength=k) / len(yy)).tolist(), strict=True)),
        "prevalence_at_build": {c: n / max(sum(built.values()), 1) for c, n in built.items()},
        "at_build": {key: bundle.spec.metrics.get(key) for key in ("auc", "balanced_accuracy", "accuracy", "ece",
                                                                  "coverage", "mean_set_size", "critical_miss_rate",
                                                                  "over_triage_rate")},
        "decision_rule": (bundle.spec.metrics.get("decision_rule") or {"chosen": "set", "critical_threshold": None}),
        "warnings": ([BUILT_FROM_THESE] if data_sha256 and data_sha256 == bundle.spec.training.get("data_sha256")
                     else []),
    })
    return TableEvaluation(bundle, source, m, refused)
