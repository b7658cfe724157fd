"""`carelens clinical build`: a calibrated, conformalised tabular model written as a clinical bundle.

The recipe (the one ``bench/symptoms.py`` measured): logistic regression on encoded inputs (missing values as
explicit indicators, never dropped), C = 0.3; k-fold cross-validation, grouped where the data has groups (a
horse's hospital number: no horse in two folds); a temperature fitted on the out-of-fold log-odds; a
conformal threshold fitted on the out-of-fold calibrated probabilities, its coverage estimated cross-fitted
(each fold's threshold fitted on the other folds); the decision rule chosen on the out-of-fold probabilities as
``carelens calibrate`` chooses an image model's (:func:`carelens.policy.choose_decision_rule`: the set rule,
or escalation when the critical outcomes' probability reaches a threshold, whichever keeps the critical-miss rate
at the target with the lowest over-triage), its critical-miss and over-triage rates estimated cross-fitted too (each
fold decided by the rule chosen on the other folds); the shipped model refitted on every row.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carelens import __version__
from carelens.bundle import DecisionParams, InputField, write_tabular_bundle
from carelens.calibrate import ConformalClassifier, TemperatureScaler
from carelens.data import read_table
from carelens.errors import DataError
from carelens.fusion import TabularModel, infer_fact_kinds, is_missing
from carelens.hashing import file_digest
from carelens.labels import NO_CRITICAL_NOTE, LabelSpec, load_spec
from carelens.metrics import calibration_report, coverage_report
from carelens.policy import (
    DecisionPolicy,
    choose_decision_rule,
    critical_miss_rate,
    level_agreement,
    over_triage_rate,
    rule_summary,
    triage_levels,
)
from carelens.settings import data_root
from carelens.steps.calibrate import operating_points
from carelens.symptoms import (
    HEART,
    HEART_INPUTS,
    HORSE_COLIC,
    HORSE_COLIC_INPUTS,
    cross_validate,
    load_heart,
    load_horse_colic,
)

__all__ = ["CLINICAL_SETS", "build_clinical", "read_clinical_table"]

CLINICAL_SETS = ("heart", "horse_colic")
C = 0.3


def _inputs_from_data(rows: Sequence[Mapping[str, Any]], numeric: Sequence[str], categorical: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """An input schema for a table without a curated one: ranges padded around the data, the values seen."""
    out: list[dict[str, Any]] = []
    for c in numeric:
        vals = [float(r[c]) for r in rows if not is_missing(r.get(c))]
        lo, hi = min(vals), max(vals)
        pad = max((hi - lo) / 2, 1.0)
        out.append({"name": c, "type": "number", "min": lo - pad if lo < 0 else max(0.0, lo - pad), "max": hi + pad})
    out += [{"name": c, "type": "category"} for c in categorical]
    return out


def read_clinical_table(path: Path, spec: LabelSpec, label_column: str, group_column: str | None = None
                        ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray | None]:
    """Rows of a CSV (``?`` or empty = missing; numbers as floats), labels mapped by ``spec``, groups."""
    raw = read_table(path, "clinical table")
    for col, what in ((label_column, "--label-column"), (group_column, "--group-column")):
        if col is not None and col not in raw[0]:
            raise DataError(f"{path} has no column {col!r} ({what}); its columns are {', '.join(raw[0])}")
    mapped = spec.map_labels([(r[label_column] or "").strip() for r in raw])
    rows, y, groups = [], [], []
    for r, m in zip(raw, mapped, strict=True):
        if m is None:
            continue
        row: dict[str, Any] = {}
        for k, v in r.items():
            if k in (label_column, group_column):
                continue
            s = (v or "").strip()
            try:
                row[k] = None if s in ("", "?") else float(s)
            except ValueError:
                row[k] = s
        rows.append(row)
        y.append(spec.index(m))
        groups.append(r[group_column] if group_column else "")
    return rows, np.asarray(y), np.asarray(groups) if group_column else None


def build_clinical(source: str | Path, out: Path, *, spec: str | Path | LabelSpec | None = None,
                   label_column: str = "label", group_column: str | None = None, name: str | None = None,
                   version: str = "1", folds: int = 5, alpha: float = 0.1, seed: int = 0,
                   critical_miss_target: float = 0.02, on_fold: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Build ``out/bundle.json`` from ``heart``, ``horse_colic`` or a CSV; returns the cross-validated figures.
    ``critical_miss_target``: the decision rule shipped keeps the out-of-fold critical-miss rate at or under it with
    the lowest over-triage. ``on_fold(1)`` after each cross-validation fold (a progress bar's ``advance``)."""
    numeric: Sequence[str]
    categorical: Sequence[str]
    groups: np.ndarray | None = None
    if str(source) == "heart":
        label_spec = load_spec(spec or "heart")
        rows, y = load_heart(data_root() / "uci_heart_disease")
        numeric, categorical, schema, data = HEART["numeric"], HEART["categorical"], HEART_INPUTS, "uci_heart_disease/cleveland"
    elif str(source) == "horse_colic":
        label_spec = load_spec(spec or "horse_colic")
        rows, y, groups = load_horse_colic(data_root() / "veterinary" / "uci_horse_colic")
        numeric, categorical = HORSE_COLIC["numeric"], HORSE_COLIC["categorical"]
        schema, data = HORSE_COLIC_INPUTS, "veterinary/uci_horse_colic"
    else:
        if spec is None:
            raise DataError("a clinical table needs a label spec (--spec) giving each outcome its triage and advice; "
                            f"`carelens specs --init {source} --label-column {label_column} --out spec.yaml` writes one "
                            "to edit")
        label_spec = load_spec(spec)
        rows, y, groups = read_clinical_table(Path(source), label_spec, label_column, group_column)
        numeric, categorical = infer_fact_kinds(rows)
        schema, data = _inputs_from_data(rows, numeric, categorical), str(source)
    k = len(label_spec.classes)
    counts = np.bincount(y, minlength=k)
    if (counts < folds).any():
        raise DataError(f"every outcome needs at least {folds} rows for {folds}-fold validation; counts "
                        f"{dict(zip(label_spec.class_ids, counts.tolist(), strict=True))}")
    cv = cross_validate(rows, y, numeric, categorical, groups=groups, folds=folds, seed=seed, C=C,
                        on_fold=on_fold)
    oof_logits = np.log(np.clip(cv["proba"], 1e-12, 1.0))
    ts = TemperatureScaler().fit(oof_logits, y)
    oof = ts.predict_proba(oof_logits)
    mask = np.zeros_like(oof, dtype=bool)
    for f in np.unique(cv["fold"]):  # cross-fitted: each fold's sets from a threshold fitted on the others
        te, tr = cv["fold"] == f, cv["fold"] != f
        mask[te] = ConformalClassifier(alpha, "lac", class_conditional=False).fit(oof[tr], y[tr]).predict_set(oof[te])
    cov = coverage_report(mask, y, label_spec.class_ids)
    cal = calibration_report(oof, y)
    conformal = ConformalClassifier(alpha, "lac", class_conditional=False).fit(oof, y)
    decision, safety = _decision_rule(oof, y, cv["fold"], mask, label_spec, conformal, critical_miss_target)
    model = TabularModel(numeric, categorical, C=C).fit(rows, y, k)
    metrics = {"auc": cv.get("auc"), "accuracy": cv["accuracy"], "balanced_accuracy": cv["balanced_accuracy"],
               "brier": cv.get("brier"), "ece_uncalibrated": cv["ece"], "ece": cal["ece"], "nll": cal["nll"],
               "coverage": cov["coverage"], "coverage_target": 1 - alpha, "mean_set_size": cov["mean_set_size"],
               **safety, "n": len(y), "per_class": dict(zip(label_spec.class_ids, counts.tolist(), strict=True))}
    fields = {f["name"]: f for f in schema}
    inputs = [InputField.model_validate({"name": c, **fields.get(c, {"type": "number" if c in numeric else "category"}),
                                         **({"values": model.encoder_.levels_[c]} if c in categorical else {})})
              for c in [*numeric, *categorical]]
    inputs = sorted(inputs, key=lambda f: [x["name"] for x in schema].index(f.name) if f.name in fields else 999)
    training = {"data": data, **({"data_sha256": file_digest(Path(source))} if Path(source).is_file() else {}),
                "folds": folds, "grouped": groups is not None, "C": C, "seed": seed, "alpha": alpha,
                "numeric": list(numeric), "categorical": list(categorical)}
    write_tabular_bundle(out, name=name or label_spec.name, version=version, spec=label_spec, inputs=inputs, model=model,
                         temperature=ts, conformal=conformal, train_rows=rows, metrics=metrics, training=training,
                         intended_use=label_spec.description.strip(), decision=decision,
                         versions={"carelens": __version__, "python": platform.python_version()})
    return metrics


def _decision_rule(oof: np.ndarray, y: np.ndarray, fold: np.ndarray, mask: np.ndarray, spec: LabelSpec,
                   conformal: ConformalClassifier, target: float) -> tuple[DecisionParams, dict[str, Any]]:
    """The decision settings to ship (the rule chosen on every out-of-fold row) and the safety figures: the
    critical-miss and over-triage rates of the shipped procedure, each fold decided by the rule chosen on the other
    folds with its cross-fitted sets (``mask``); the set rule's beside them; the operating points as alpha varies.
    A table has no out-of-distribution gate (its input checks refuse values outside the accepted ranges), so every
    row counts as in distribution."""
    inside = np.ones(len(y), dtype=bool)
    if not spec.critical_indices:  # nothing to escalate: no rule to choose, no miss to count
        return DecisionParams(), {"warnings": [NO_CRITICAL_NOTE.format(name=spec.name)]}
    rule = choose_decision_rule(oof, y, inside, mask, spec, target=target)
    levels: list[str] = [""] * len(y)
    for f in np.unique(fold):
        held = np.flatnonzero(fold == f)
        rest = fold != f
        chosen = choose_decision_rule(oof[rest], y[rest], inside[rest], mask[rest], spec, target=target)
        policy = DecisionPolicy(critical_threshold=chosen["critical_threshold"])
        for i, level in zip(held, triage_levels(oof[held], mask[held], inside[held], spec, policy=policy), strict=True):
            levels[i] = level
    set_levels = triage_levels(oof, mask, inside, spec)
    rates = {"critical_miss_rate": critical_miss_rate(levels, y, spec), "over_triage_rate": over_triage_rate(levels, y, spec),
             "critical_miss_rate_set_rule": critical_miss_rate(set_levels, y, spec),
             "over_triage_rate_set_rule": over_triage_rate(set_levels, y, spec)}
    safety = {
        **{k: None if np.isnan(v) else v for k, v in rates.items()},  # None: no routine outcome to over-triage
        # the shipped procedure's level for each row against the row's own (escalation above it is the cost)
        "triage_agreement": level_agreement(levels, y, spec),
        "decision_rule": rule_summary(rule),
        "operating_points": operating_points(oof, y, inside, None, spec, conformal),
    }
    return DecisionParams(critical_threshold=rule["critical_threshold"]), safety
