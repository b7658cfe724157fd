"""Calibration, conformal and OOD benchmarks (issue 4) on the training benchmark's runs.

Usage: python bench/calibration.py CASE [CASE ...] with CASE in ham10000, pneumoniamnist, busi_binary, busi_3class.
Writes calibration_<case>.json and ood_<case>.json, and the bundle to bench/out/<case>/bundle/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, run_of, write_result
from _ood_sets import measure_ood
from ood_seeds import rescore

from carelens.errors import ConfigError
from carelens.steps import Run, calibrate_run

OTHER = {"ham10000": ("xray", "ultrasound", "fundus"), "pneumoniamnist": ("dermoscopy", "ultrasound"),
         "busi_binary": ("dermoscopy", "xray"), "busi_3class": ("dermoscopy", "xray")}


def pooled_figures(run_dir: Path) -> dict[str, Any]:
    """Test figures of the sets with the non-critical classes' thresholds pooled (``*_pooled``; each critical class
    keeps its own): coverage (overall, per class, the lowest, the lowest of a critical class), mean set size, and
    the critical-miss and over-triage rates of the set rule and of the rule chosen with those sets. {} where the
    spec marks no class critical (nothing to pool)."""
    try:
        rep = calibrate_run(run_dir, pool_noncritical=True).report
    except ConfigError:
        return {}
    t, spec = rep["test"], Run(run_dir).config.spec
    assert spec is not None
    out = {f"{k}_pooled": t[k] for k in ("coverage", "mean_set_size", "min_class_coverage", "per_class_coverage",
                                         "critical_miss_rate", "over_triage_rate")}
    out["min_critical_class_coverage_pooled"] = min(t["per_class_coverage"][spec.class_ids[i]]
                                                    for i in spec.critical_indices)
    out |= {f"{k}_set_rule_pooled": t[f"{k}_set_rule"] for k in ("critical_miss_rate", "over_triage_rate")
            if f"{k}_set_rule" in t}
    out["pooled_classes"] = rep["pooled_classes"]
    return out


def run(case: str) -> None:
    t0 = time.perf_counter()
    run_dir = run_of(case)
    rescore(run_dir)  # a run trained before the gate's features grew: the same weights, today's features
    # marginal variant first, for its coverage figure; then the class-conditional one that ships
    marginal = calibrate_run(run_dir, class_conditional=False).report["test"]
    auto = calibrate_run(run_dir, scaler="auto").report  # temperature + class biases where validation prefers them
    pooled = pooled_figures(run_dir)  # the non-critical classes' thresholds pooled (calibrate --pool-noncritical)
    knn = calibrate_run(run_dir, ood_method="knn")
    maha = calibrate_run(run_dir, ood_method="mahalanobis")
    cal = calibrate_run(run_dir)
    t = cal.report["test"]
    metrics = {
        "ece_before": t["ece_before"], "ece": t["ece"], "ece_floor": t["ece_floor"], "mce": t["mce"], "brier_before": t["brier_before"],
        "brier": t["brier"], "nll_before": t["nll_before"], "nll": t["nll"], "temperature": cal.report["temperature"],
        "coverage_marginal": marginal["coverage"], "mean_set_size_marginal": marginal["mean_set_size"],
        "min_class_coverage_marginal": marginal["min_class_coverage"],
        "coverage": t["coverage"], "min_class_coverage": t["min_class_coverage"],
        "per_class_coverage": t["per_class_coverage"], "mean_set_size": t["mean_set_size"],
        "set_size_histogram": t["set_size_histogram"], "critical_miss_rate": t["critical_miss_rate"],
        "over_triage_rate": t["over_triage_rate"],
        "triage_agreement": t.get("triage_agreement"),  # each test case's level as shipped against its own level
        "operating_points": cal.report.get("operating_points"),
        "fallback_classes": cal.report["fallback_classes"],
        "scaler": cal.report["scaler"],  # the shipped one: prior-free (the temperature, or with class scales)
        "ece_scaler_auto": auto["test"]["ece"], "nll_scaler_auto": auto["test"]["nll"], "scaler_auto": auto["scaler"],
        **pooled,
    }
    rule = cal.report.get("decision_rule")
    if rule:  # the shipped rule's test figures, beside the set rule's
        chosen = next(r for r in rule["test"] if r["critical_threshold"] == rule["critical_threshold"])
        metrics.update(decision_rule=rule["chosen"], critical_threshold=rule["critical_threshold"],
                       critical_miss_rate_shipped=chosen["critical_miss_rate"],
                       over_triage_rate_shipped=chosen["over_triage_rate"],
                       decision_rule_val=rule["val"], decision_rule_test=rule["test"])
    targets = {"ece": 0.02, "critical_miss_rate": 0.05}
    if case == "ham10000":
        targets.update(min_class_coverage=0.85, mean_set_size=1.6)
    res = write_result(f"calibration_{case}", case, time.perf_counter() - t0, metrics, targets,
                       baseline={"name": "uncalibrated softmax", "metrics": {"ece": t["ece_before"]}},
                       notes=f"command: python bench/calibration.py {case}; the run "
                             f"{run_dir.resolve().relative_to(Path(__file__).resolve().parents[1])} (its weights as last "
                             "trained: a retrained run gives other figures); the scaler, conformal thresholds (LAC, "
                             "alpha 0.1) and OOD gate fitted on validation; figures on test. coverage target 0.90 "
                             "+/- 0.02 (marginal and class-conditional). scaler: the shipped calibrate default (--scaler "
                             "prior_free: the temperature alone or with a scale per class, by cross-fitted validation "
                             "NLL); *_scaler_auto: calibrate --scaler auto (class biases and vector scaling compete "
                             "too), not shipped. ece_floor: the ECE a perfectly "
                             "calibrated model would show with these probabilities on this many test images (labels "
                             "drawn from the probabilities, 200 draws: mean, 5th-95th percentiles). triage_agreement: "
                             "each test image's level at the shipped rule against its class's own level (counts[own]"
                             "[given] over self_care ... emergency_ambulance; shares less urgent / same / more urgent). "
                             "*_pooled: calibrate --pool-noncritical (the non-critical classes share one conformal "
                             "threshold, each critical class keeps its own), not shipped by default.")
    print(res)

    # -- OOD --------------------------------------------------------------------------------------
    t1 = time.perf_counter()
    out = measure_ood(run_dir, OUT / case / "bundle", {"": cal.ood, "_knn": knn.ood, "_mahalanobis": maha.ood},
                      OTHER[case], case)
    print(write_result(f"ood_{case}", case, time.perf_counter() - t1, out,
                       {"ood_auroc_far": 0.99, "ood_auroc_near": 0.95, "ood_pass_rate": 0.95},
                       notes="default 'combined': Mahalanobis (shared Ledoit-Wolf covariance), k-th nearest "
                             "neighbour (k=10, cosine) and energy, each standardised on validation, max taken; "
                             "'_knn' and '_mahalanobis' = each distance alone (+ energy). Threshold passes 95% of "
                             "in-distribution images with probability 0.95 over the validation draw (training-"
                             "conditional order statistic); pass rate measured on test."))


if __name__ == "__main__":
    for c in sys.argv[1:]:
        run(c)
