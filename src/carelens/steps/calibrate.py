"""`carelens calibrate RUN`: fit temperature, conformal thresholds, the OOD gate and (where the data has
clinical facts) the facts fusion on the run's validation split; report on its test split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carelens.calibrate import (
    ConformalClassifier,
    ConformalScore,
    OODGate,
    OODMethod,
    ScalerChoice,
    TemperatureScaler,
    choose_finding_weights,
    choose_scaler,
)
from carelens.errors import ConfigError, DataError
from carelens.fusion import FactsFusion, infer_fact_kinds
from carelens.labels import NO_CRITICAL_NOTE, NO_SPEC_NOTE, LabelSpec
from carelens.metrics import balanced_accuracy, calibration_report, coverage_report, decisions, ece_noise_floor, softmax
from carelens.plots import operating_points_png, reliability_png
from carelens.policy import (
    DecisionPolicy,
    choose_decision_rule,
    critical_miss_rate,
    level_agreement,
    over_triage_rate,
    triage_levels,
)
from carelens.steps.multilabel import calibrate_multilabel
from carelens.steps.run import Calibration, Predictions, Run
from carelens.tasks import OutputLayout

__all__ = ["ALPHAS", "calibrate_run", "fit_calibration", "operating_points"]


def noncritical_classes(spec: LabelSpec | None) -> tuple[int, ...]:
    """The classes ``pool_noncritical`` pools: those the spec does not mark critical (ConfigError without any)."""
    if spec is None or not spec.critical_indices:
        raise ConfigError("pooling the non-critical classes' conformal thresholds needs a label spec that marks "
                          "critical classes (severity high or critical); without one, keep a threshold per class")
    return tuple(i for i in range(len(spec.classes)) if i not in spec.critical_indices)


TestOutputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # probabilities, set masks, OOD verdicts, labels


def calibrate_run(run: str | Path | Run, *, alpha: float = 0.1, score: ConformalScore = "lac", class_conditional: bool = True,
                  pool_noncritical: bool = False, ood_method: OODMethod = "combined", pass_rate: float = 0.95, pass_confidence: float | None = 0.95,
                  facts: Sequence[str] | None = None, critical_miss_target: float = 0.02,
                  scaler: ScalerChoice = "prior_free") -> Calibration:
    """Fit on the run's validation split; report on its test split; write calibration.json, ood.npz and
    reliability.png into the run.

    Args:
        pool_noncritical: the non-critical classes share one conformal threshold (each critical class keeps its
            own): smaller sets, every critical class still covered at 1 - alpha, the non-critical ones together
            (:class:`carelens.calibrate.ConformalClassifier`'s ``pooled``); needs a label spec with critical classes.
        facts: clinical facts of the dataset (manifest columns such as age, sex, site) to fuse with the
            image model; ``None`` uses every fact the dataset has, ``[]`` none.
        pass_confidence: the probability, over the draw of the validation images, that the OOD gate passes
            ``pass_rate`` of in-distribution inputs (:class:`carelens.calibrate.OODGate`); None: a plain quantile.
        critical_miss_target: the decision rule shipped is the one that keeps the validation critical-miss rate
            at or under this with the lowest over-triage (:func:`choose_decision_rule`).
        scaler: which scalers compete by cross-fitted validation NLL (:func:`carelens.calibrate.choose_scaler`):
            ``prior_free`` (the default: the temperature alone or with a scale per class), ``auto`` (also class
            biases, and scales with biases: vector scaling) or ``temperature`` alone. Biases are not in the
            default: they learn the validation class balance, and PneumoniaMNIST's test split has another one
            (test ECE 0.033 with vector scaling against 0.014 with class scales). Nor is that shift only one of
            class balance: re-estimating the test prior from the unlabelled test outputs (EM, Saerens et al. 2002)
            found 0.35 / 0.65 (true 0.375 / 0.625) and lowered NLL 0.277 -> 0.260, but ECE rose to 0.036.
    """
    r = run if isinstance(run, Run) else Run(run)
    cfg = r.config
    a = r.predictions()
    if cfg.spec is not None and cfg.spec.multilabel:
        return calibrate_multilabel(r, a, cfg.spec, OutputLayout.of(cfg.spec, cfg.train.severity_head), alpha=alpha,
                                    ood_method=ood_method, pass_rate=pass_rate, pass_confidence=pass_confidence,
                                    critical_miss_target=critical_miss_target)
    cal, test = fit_calibration(a, cfg.class_ids, cfg.spec, alpha=alpha, score=score,
                                class_conditional=class_conditional, pool_noncritical=pool_noncritical,
                                ood_method=ood_method, pass_rate=pass_rate,
                                pass_confidence=pass_confidence,
                                critical_miss_target=critical_miss_target, scaler=scaler)
    report = cal.report
    if facts is None or facts:
        rule = report.get("decision_rule") or {}
        assert cal.conformal is not None and cal.temperature is not None
        policy = DecisionPolicy(critical_threshold=rule.get("critical_threshold"),
                                finding_weights=cal.finding_weights)
        section = _fit_facts(r, a, cal.temperature.predict_proba(a.val_logits), cal.conformal, facts, test, policy)
        if section is not None:
            report["facts"] = section
    section = report.get("test") or {}
    before = section.get("reliability_before") or report["val"]["before"]["reliability"]
    after = section.get("reliability") or report["val"]["after"]["reliability"]
    ops = report.get("operating_points")
    r.write_calibration(cal, reliability_png(before, after, "test" if section else "val"),
                        operating_points_png(ops["val"], ops.get("test")) if ops else None)
    return cal


def fit_calibration(a: Predictions, class_ids: list[str], spec: LabelSpec | None, *, alpha: float = 0.1,
                    score: ConformalScore = "lac", class_conditional: bool = True, pool_noncritical: bool = False,
                    ood_method: OODMethod = "combined",
                    pass_rate: float = 0.95, pass_confidence: float | None = 0.95, critical_miss_target: float = 0.02,
                    scaler: ScalerChoice = "prior_free") -> tuple[Calibration, TestOutputs | None]:
    """A multiclass model's calibration from its outputs (``calibrate_run`` without clinical facts and without
    writing anything): fitted on the validation split, reported on the test split when there is one. Also the test
    split's outputs, for what is fitted on top (the facts fusion)."""
    ts, chosen = choose_scaler(a.val_logits, a.val_y, among=scaler)  # extra parameters where they earn their place
    pv = ts.predict_proba(a.val_logits)
    cp = ConformalClassifier(alpha, score, class_conditional, noncritical_classes(spec) if pool_noncritical else ()).fit(
        pv, a.val_y)
    gate = OODGate(ood_method, pass_rate, confidence=pass_confidence).fit(a.train_features, a.train_y, a.val_features,
                                                                          a.val_logits)
    report: dict[str, Any] = {
        **ts.to_dict(),  # temperature (and bias)
        "scaler": chosen,
        "val": {"before": calibration_report(softmax(a.val_logits), a.val_y),
                "after": calibration_report(pv, a.val_y)},
        "conformal": cp.to_dict(),
        "fallback_classes": [class_ids[i] for i in cp.fallback_classes_],
        "pooled_classes": [class_ids[i] for i in cp.pooled],
        "ood": gate.to_dict(),
    }
    counts = np.bincount(a.train_y.astype(np.int64), minlength=len(class_ids))
    weights, report["finding_weights"] = choose_finding_weights(pv, a.val_y, np.maximum(counts, 1) / counts.sum())
    spec_note = NO_SPEC_NOTE if spec is None else None if spec.critical_indices else NO_CRITICAL_NOTE.format(name=spec.name)
    warnings = [w for w in (spec_note, ts.shortfall(), gate.shortfall()) if w]
    if cp.fallback_classes_:
        warnings += [
            f"class {class_ids[i]!r} has {int(cp.class_counts_[i])} validation examples, fewer than the "
            f"{cp.min_per_class_} its own {1 - alpha:.0%} guarantee needs: it uses the marginal threshold"
            for i in cp.fallback_classes_
        ]
    if warnings:
        report["warnings"] = warnings
    test: TestOutputs | None = None
    if a.has_test:
        test, report["test"] = _test_report(a, ts, cp, gate, class_ids, spec)
        pt, yt = test[0], test[3]
        report["test"]["balanced_accuracy"] = balanced_accuracy(yt, decisions(pt, weights), len(class_ids))
        report["test"]["balanced_accuracy_most_probable"] = balanced_accuracy(yt, decisions(pt), len(class_ids))
    if spec is not None:
        in_val = gate.is_in_distribution(a.val_features, a.val_logits)
        report["operating_points"] = operating_points(pv, a.val_y, in_val, test, spec, cp)
        if spec.critical_indices:
            rule = report["decision_rule"] = choose_decision_rule(pv, a.val_y, in_val, cp.cross_fitted_sets(pv, a.val_y), spec,
                                                                  test, target=critical_miss_target)
            if "test" in rule:  # the test figures of the rule that ships; the set rule's kept beside them
                shipped = next(x for x in rule["test"] if x["critical_threshold"] == rule["critical_threshold"])
                report["test"].update({f"{k}_set_rule": report["test"][k] for k in ("critical_miss_rate", "over_triage_rate")})
                report["test"].update({k: shipped[k] for k in ("critical_miss_rate", "over_triage_rate")})
    if test is not None and spec is not None:  # every test case's level as shipped, against its own level
        rule = report.get("decision_rule") or {}
        policy = DecisionPolicy(critical_threshold=rule.get("critical_threshold"),
                                finding_weights=None if weights is None else tuple(weights.tolist()))
        report["test"]["triage_agreement"] = level_agreement(triage_levels(*test[:3], spec, policy=policy), test[3], spec)
    return Calibration(gate, report, ts, cp), test


ALPHAS = (0.05, 0.1, 0.15, 0.2)


def operating_points(pv: np.ndarray, y: np.ndarray, in_val: np.ndarray, test: TestOutputs | None,
                     spec: LabelSpec, conformal: ConformalClassifier, alphas: Sequence[float] = ALPHAS, seed: int = 0) -> dict[str, Any]:
    """Critical-miss and over-triage rates (with coverage and mean set size) of the decision policy as the
    conformal level alpha varies, so that a deployment can choose its operating point on validation data.

    Args:
        pv, y, in_val: calibrated validation probabilities, labels and OOD verdicts.
        test: the test split's calibrated probabilities, (unused) sets, OOD verdicts and labels, if any.
        conformal: the sets' settings (score, conditioning; its own alpha is not used).

    ``val``: cross-fitted on the validation split (thresholds fitted on one half decide the other, and the
    reverse), so no case is decided by thresholds fitted on itself. ``test``: thresholds fitted on all of
    validation, measured on test (for the report; not for choosing).
    """
    rows_val, rows_test = [], []
    for alpha in alphas:
        mask = conformal.like(alpha).cross_fitted_sets(pv, y, seed)
        rows_val.append(_point(alpha, pv, mask, in_val, y, spec))
        if test is not None:
            pt, _, in_test, yt = test
            cp = conformal.like(alpha).fit(pv, y)
            rows_test.append(_point(alpha, pt, cp.predict_set(pt), in_test, yt, spec))
    return {"alphas": list(alphas), "val": rows_val, **({"test": rows_test} if rows_test else {})}


def _point(alpha: float, proba: np.ndarray, mask: np.ndarray, in_dist: np.ndarray, y: np.ndarray,
           spec: LabelSpec) -> dict[str, float]:
    levels = triage_levels(proba, mask, in_dist, spec)
    cov = coverage_report(mask, y, spec.class_ids)
    return {"alpha": alpha, "critical_miss_rate": critical_miss_rate(levels, y, spec),
            "over_triage_rate": over_triage_rate(levels, y, spec), "coverage": cov["coverage"],
            "mean_set_size": cov["mean_set_size"]}


def _test_report(a: Predictions, ts: TemperatureScaler, cp: ConformalClassifier, gate: OODGate,
                 class_ids: list[str], spec: LabelSpec | None) -> tuple[TestOutputs, dict[str, Any]]:
    assert a.test_logits is not None and a.test_y is not None and a.test_features is not None  # a.has_test
    y = a.test_y
    pt = ts.predict_proba(a.test_logits)
    mask = cp.predict_set(pt)
    in_dist = gate.is_in_distribution(a.test_features, a.test_logits)
    before, after = calibration_report(softmax(a.test_logits), y), calibration_report(pt, y)
    levels = triage_levels(pt, mask, in_dist, spec) if spec else None
    return (pt, mask, in_dist, y), {
        "ece_before": before["ece"], "ece": after["ece"], "mce": after["mce"], "brier_before": before["brier"],
        "brier": after["brier"], "nll_before": before["nll"], "nll": after["nll"],
        "reliability_before": before["reliability"], "reliability": after["reliability"],
        "ece_floor": ece_noise_floor(pt),  # what a perfectly calibrated model would show on this many test images
        **coverage_report(mask, y, class_ids),
        "ood_pass_rate": float(in_dist.mean()),
        "critical_miss_rate": critical_miss_rate(levels, y, spec) if spec and levels else None,
        "over_triage_rate": over_triage_rate(levels, y, spec) if spec and levels else None,
    }


def _fit_facts(run: Run, a: Predictions, pv: np.ndarray, cp: ConformalClassifier, names: Sequence[str] | None,
               test: TestOutputs | None, policy: DecisionPolicy) -> dict[str, Any] | None:
    """Fit the facts model (train split) and its fusion with the image (val probabilities ``pv``); measure
    it on the test split's image probabilities, sets and OOD verdicts (``test``)."""
    cfg = run.config
    try:
        ds, splits = run.data()
    except (DataError, TypeError) as exc:
        if names:
            raise DataError(f"facts fusion needs the run's data ({cfg.dataset.source}): {exc}") from None
        return None
    if not any(e.facts for e in ds):
        if names:
            raise DataError(f"the run's data ({cfg.dataset.source}) has no clinical facts; it has only images and labels")
        return None
    by_id = {e.id: e for e in ds}

    def rows(ids: Sequence[Any] | np.ndarray) -> list[dict[str, Any]]:
        return [dict(by_id[str(i)].facts) for i in ids]

    train_ids = [ds[i].id for i in splits.indices(ds, "train")]
    numeric, categorical = infer_fact_kinds(rows(train_ids), names)
    fusion = FactsFusion(numeric, categorical, conformal=cp)
    fusion.fit(rows(train_ids), np.asarray([cfg.class_ids.index(by_id[i].label) for i in train_ids]),
               rows(a.val_ids), pv, a.val_y)
    section: dict[str, Any] = {"fusion": fusion.to_dict(), "schema": fusion.schema()}
    if test is not None and a.test_ids is not None and a.test_y is not None:
        pt, mask, in_dist, _ = test
        section["test"] = fusion.measure(pt, mask, rows(a.test_ids), a.test_y, cfg.class_ids, spec=cfg.spec,
                                         in_distribution=in_dist, policy=policy)
    return section
