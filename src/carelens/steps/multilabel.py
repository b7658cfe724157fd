"""The calibrate step for multi-label runs: per-condition temperatures and thresholds, conformal risk control
of the false-negative rate, the OOD gate; measured on the run's test split with the same decision policy the
engine uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from carelens.calibrate import MultilabelCalibrator, OODGate, OODMethod, risk_control_threshold
from carelens.labels import LabelSpec, triage_rank
from carelens.metrics import binary_calibration_report, fnr, multilabel_metrics, severity_metrics
from carelens.plots import reliability_png
from carelens.policy import (
    CRITICAL_THRESHOLDS,
    URGENT,
    DecisionPolicy,
    choose_rule_by_levels,
    critical_miss_rate,
    level_agreement,
    multilabel_decision,
    over_triage_rate,
)
from carelens.steps.run import Calibration, Predictions, Run
from carelens.tasks import OutputLayout, sigmoid

__all__ = ["ALPHAS", "SEVERITY_FLOORS", "calibrate_multilabel", "choose_multilabel_rule", "choose_severity_floor",
           "multilabel_report", "ood_classes", "triage_levels_multilabel", "urgent_recall_floor"]

ALPHAS = (0.05, 0.1, 0.15, 0.2)


def ood_classes(presence: np.ndarray) -> np.ndarray:
    """A class per image for the OOD gate's class-conditional means: its first condition (K for none)."""
    y = np.asarray(presence)
    return np.asarray(np.where(y.any(1), y.argmax(1), y.shape[1]))


def triage_levels_multilabel(cal: MultilabelCalibrator, layout: OutputLayout, spec: LabelSpec, logits: np.ndarray,
                             in_dist: np.ndarray, kept: np.ndarray | None = None,
                             policy: DecisionPolicy | None = None) -> list[str]:
    """The triage level the engine's decision policy gives each image."""
    proba = cal.predict_proba(layout.condition_logits(logits))
    present = cal.present(proba)
    kept = cal.kept(proba) if kept is None else kept
    sev = layout.severity_proba(logits)
    levels = []
    for n in range(len(proba)):
        levels.append(multilabel_decision(proba[n], present[n], kept[n], [s[n] if s is not None else None for s in sev],
                                          spec, in_distribution=bool(in_dist[n]), policy=policy).level)
    return levels


def multilabel_report(cal: MultilabelCalibrator, layout: OutputLayout, spec: LabelSpec, logits: np.ndarray,
                      y: np.ndarray, in_dist: np.ndarray, policy: DecisionPolicy | None = None) -> dict[str, Any]:
    """Every figure of a multi-label model on labelled outputs (the test split, or an evaluation set)."""
    presence, levels = layout.split_targets(y)
    raw = sigmoid(layout.condition_logits(logits))
    proba = cal.predict_proba(layout.condition_logits(logits))
    kept = cal.kept(proba)
    decided = triage_levels_multilabel(cal, layout, spec, logits, in_dist, kept, policy)
    at_thresholds = multilabel_metrics(presence, proba, spec.class_ids, thresholds=cal.thresholds_)
    at_half = multilabel_metrics(presence, proba, spec.class_ids, thresholds=0.5)
    before, after = binary_calibration_report(raw, presence), binary_calibration_report(proba, presence)
    return {
        **{k: v for k, v in at_thresholds.items()},
        "at_0.5": {k: at_half[k] for k in ("macro_f1", "micro_f1", "subset_accuracy", "hamming_loss")},
        "severity": severity_metrics(levels, layout.severity_proba(logits), presence,
                                     [c.level_ids for c in spec.classes], spec.class_ids),
        "fnr": fnr(kept, presence), "fnr_target": cal.alpha,
        "mean_kept": float(kept.sum(1).mean()), "mean_true": float(presence.sum(1).mean()),
        "mean_present": float(cal.present(proba).sum(1).mean()),
        "ece_before": before["ece"], "ece": after["ece"], "brier": after["brier"],
        "reliability_before": before["reliability"], "reliability": after["reliability"],
        "ood_pass_rate": float(np.mean(in_dist)),
        "critical_miss_rate": critical_miss_rate(decided, y, spec),
        "over_triage_rate": over_triage_rate(decided, y, spec),
        "triage_agreement": level_agreement(decided, y, spec),
    }


def urgent_recall_floor(spec: LabelSpec, floor: float) -> dict[int, float]:
    """The conditions that can need urgent care (their own triage, or any of their grades', at least
    ``consultation_24``): their decision thresholds must reach ``floor`` recall on validation."""
    bar = triage_rank(URGENT)
    return {k: floor for k, c in enumerate(spec.classes)
            if max([triage_rank(c.triage), *(triage_rank(lv.triage) for lv in c.severity_levels)]) >= bar}


SEVERITY_FLOORS = (0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02)


def choose_severity_floor(cal: MultilabelCalibrator, layout: OutputLayout, spec: LabelSpec, logits: np.ndarray,
                          y: np.ndarray, in_dist: np.ndarray, target: float) -> dict[str, Any]:
    """The operating point of the severity rule, chosen on validation: the highest severity floor (the least
    escalation) whose critical-miss rate meets ``target``; when none does, the one that misses fewest (ties: the
    highest floor). Every floor's critical-miss and over-triage rates are reported beside it."""
    rows = []
    for floor in SEVERITY_FLOORS:
        decided = triage_levels_multilabel(cal, layout, spec, logits, in_dist, policy=DecisionPolicy(severity_floor=floor))
        rows.append({"severity_floor": floor, "critical_miss_rate": critical_miss_rate(decided, y, spec),
                     "over_triage_rate": over_triage_rate(decided, y, spec)})
    graded = [r for r in rows if not np.isnan(r["critical_miss_rate"])]
    meeting = [r for r in graded if r["critical_miss_rate"] <= target]
    if meeting:
        chosen = meeting[0]["severity_floor"]
    elif graded:
        chosen = min(graded, key=lambda r: (r["critical_miss_rate"], -r["severity_floor"]))["severity_floor"]
    else:  # no urgent case in validation: nothing to choose on
        chosen = DecisionPolicy().severity_floor
    return {"chosen": chosen, "critical_miss_target": target, "met": bool(meeting), "val": rows}


def choose_multilabel_rule(cal: MultilabelCalibrator, layout: OutputLayout, spec: LabelSpec, logits: np.ndarray,
                           y: np.ndarray, in_dist: np.ndarray, *, severity_floor: float, target: float,
                           test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                           seed: int = 0) -> dict[str, Any]:
    """The decision rule of a multi-label model, chosen on validation by :func:`carelens.policy.choose_rule_by_levels`
    as image, clinical and symptom models choose theirs: the conditions present or kept decide (the set rule), or
    a condition that can need urgent care also counts from a probability threshold on. The validation levels are
    cross-fitted (a calibrator like ``cal``, fitted on one seeded half, decides the other half, and the reverse), so
    no case is decided by the thresholds and risk level fitted on itself; ``test`` (logits, targets, OOD verdicts)
    is decided by ``cal`` itself, for the report only."""
    presence, _ = layout.split_targets(y)
    candidates: list[float | None] = [None, *CRITICAL_THRESHOLDS]
    policies = {t: DecisionPolicy(severity_floor=severity_floor, critical_threshold=t) for t in candidates}
    order = np.random.default_rng(seed).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    val: dict[float | None, list[str]] = {t: [""] * len(y) for t in candidates}
    for fit, held in (halves, halves[::-1]):
        half = MultilabelCalibrator(cal.alpha, cal.recall_floor).fit(layout.condition_logits(logits[fit]), presence[fit])
        for t, pol in policies.items():
            for i, lv in zip(held, triage_levels_multilabel(half, layout, spec, logits[held], in_dist[held], policy=pol),
                             strict=True):
                val[t][i] = lv
    on_test = None
    if test is not None:
        zt, yt, in_test = test
        on_test = ({t: triage_levels_multilabel(cal, layout, spec, zt, in_test, policy=pol) for t, pol in policies.items()},
                   yt)
    return choose_rule_by_levels(val, y, spec, on_test, target=target)


def calibrate_multilabel(r: Run, a: Predictions, spec: LabelSpec, layout: OutputLayout, *, alpha: float = 0.1,
                         ood_method: OODMethod = "combined", pass_rate: float = 0.95,
                         pass_confidence: float | None = 0.95, recall_floor: float = 0.9,
                         critical_miss_target: float = 0.02, alphas: Sequence[float] = ALPHAS) -> Calibration:
    """Fit on the run's validation split, report on its test split; write calibration.json, ood.npz and
    reliability.png (pooled over conditions) into the run. The decision threshold of a condition that can need
    urgent care meets ``recall_floor`` on validation; the others maximise F1. The severity floor of the decision
    rule is chosen on validation to meet ``critical_miss_target`` (:func:`choose_severity_floor`), then the rule at
    that floor (:func:`choose_multilabel_rule`), and both are shipped."""
    pres_val, _ = layout.split_targets(a.val_y)
    zv = layout.condition_logits(a.val_logits)
    cal = MultilabelCalibrator(alpha, urgent_recall_floor(spec, recall_floor)).fit(zv, pres_val)
    pres_train, _ = layout.split_targets(a.train_y)
    gate = OODGate(ood_method, pass_rate, confidence=pass_confidence).fit(a.train_features, ood_classes(pres_train),
                                                                          a.val_features, zv)
    pv = cal.predict_proba(zv)
    report: dict[str, Any] = {
        "task": "multilabel", "multilabel": cal.to_dict(), "ood": gate.to_dict(),
        "severity_head": layout.head,
        "val": {"before": binary_calibration_report(sigmoid(zv), pres_val), "after": binary_calibration_report(pv, pres_val)},
    }
    in_val = gate.is_in_distribution(a.val_features, zv)
    floor = choose_severity_floor(cal, layout, spec, a.val_logits, a.val_y, in_val, critical_miss_target)
    report["severity_floor"] = floor
    test = None
    if a.has_test:
        assert a.test_logits is not None and a.test_y is not None and a.test_features is not None
        test = (a.test_logits, a.test_y, gate.is_in_distribution(a.test_features, layout.condition_logits(a.test_logits)))
    rule = report["decision_rule"] = choose_multilabel_rule(cal, layout, spec, a.val_logits, a.val_y, in_val,
                                                            severity_floor=floor["chosen"],
                                                            target=critical_miss_target, test=test)
    policy = DecisionPolicy(severity_floor=floor["chosen"], critical_threshold=rule["critical_threshold"])
    small = [f"{c}: {n} validation positives" for c, n in zip(spec.class_ids, pres_val.sum(0), strict=True) if n < 20]
    warnings = [w for w in (gate.shortfall(),) if w]
    if small:
        warnings.append("conditions with fewer than 20 validation positives: their thresholds and calibration rest on "
                        "few cases (" + "; ".join(small) + ")")
    if warnings:
        report["warnings"] = warnings
    if test is not None:
        test_logits, test_y, in_test = test
        report["test"] = multilabel_report(cal, layout, spec, test_logits, test_y, in_test, policy)
        set_rule = rule["test"][0]  # the set rule's test figures, beside the shipped rule's
        report["test"].update({f"{k}_set_rule": set_rule[k] for k in ("critical_miss_rate", "over_triage_rate")})
        pres_test, _ = layout.split_targets(test_y)
        pt = cal.predict_proba(layout.condition_logits(test_logits))
        rows = []
        for al in alphas:  # the price of each risk level: thresholds from validation, measured on test
            kept = pt >= risk_control_threshold(pv, pres_val, al)
            decided = triage_levels_multilabel(cal, layout, spec, test_logits, in_test, kept, policy)
            rows.append({"alpha": al, "fnr": fnr(kept, pres_test), "mean_kept": float(kept.sum(1).mean()),
                         "critical_miss_rate": critical_miss_rate(decided, test_y, spec),
                         "over_triage_rate": over_triage_rate(decided, test_y, spec)})
        report["operating_points"] = {"alphas": list(alphas), "test": rows}
    section = report.get("test") or {}
    before = section.get("reliability_before") or report["val"]["before"]["reliability"]
    after = section.get("reliability") or report["val"]["after"]["reliability"]
    calibration = Calibration(gate, report, multilabel=cal)
    r.write_calibration(calibration, reliability_png(before, after, "test" if section else "val"))
    return calibration
