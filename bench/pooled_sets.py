"""Prediction sets with the non-critical classes' thresholds pooled (`carelens calibrate --pool-noncritical`) against
one threshold per class, on the shipped HAM10000 ensembles: case `ham10000_pooled_sets`.

Class-conditional (Mondrian) sets cover every class at 90%, the rare benign ones (dermatofibroma: 9 validation images,
vascular lesions: 12) included, which needs thresholds low enough to keep each of their few examples: those classes
then enter many sets (the `ham10000` case's mean set size is 1.63 against the issue's 1.6). Pooling the classes a
triage may miss with least harm (bkl, df, nv, vasc) keeps each critical class's own guarantee (akiec, bcc, mel) and
covers the non-critical ones together.

Each pair's bundle of bench/ensemble.py (bench/out/ham10000_ensemble/ensemble_K, calibrated on validation) is run
on the validation and test splits; both variants are fitted on its calibrated validation probabilities (the image's
sets, and the sets of image + clinical facts with the bundle's own facts fusion, widened to the image's set where
the two disagree, as the bundle does) and read on test: coverage overall, per class, the lowest, the lowest of a
critical class, mean set size, and the critical-miss and over-triage rates of the shipped decision rule and of the
set rule (the most urgent class in the set), which is where the sets decide the level.

Usage: python bench/pooled_sets.py [--dihedral]   (about 5 minutes on 2 cores; after python bench/ensemble.py)
--dihedral: the same pairs exported over the 8 symmetries of the square (bench/views.py's bundles, the `ham10000`
headline's): case `ham10000_pooled_sets_dihedral`.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result
from ensemble import HERE, PAIRS
from ham_options import spread

from carelens.bundle import Bundle, load_bundle
from carelens.calibrate import ConformalClassifier
from carelens.data import open_dataset, split_dataset
from carelens.metrics import coverage_report
from carelens.policy import critical_miss_rate, level_agreement, over_triage_rate, triage_levels
from carelens.report import evaluate
from carelens.steps.calibrate import noncritical_classes

VARIANTS = ("class", "pooled")


def variant_figures(bundle: Bundle, val: Any, test: Any, fused: tuple[np.ndarray, np.ndarray, np.ndarray],
                    pooled: bool) -> dict[str, Any]:
    """Test figures of the sets fitted on ``val`` (one threshold per class, or the non-critical classes pooled);
    ``fused``: the bundle's image + facts probabilities of validation and test, and test's conflicts."""
    spec, fusion, shipped = bundle.labels, bundle.facts, bundle.conformal
    assert fusion is not None and shipped is not None
    template = ConformalClassifier(shipped.alpha, shipped.score, shipped.class_conditional,
                                   noncritical_classes(spec) if pooled else ())
    pv, yv, pt, yt = val.arrays["proba"], val.arrays["y"], test.arrays["proba"], test.arrays["y"]
    image_mask = template.like().fit(pv, yv).predict_set(pt)
    fused_val, fused_test, disagree = fused
    fused_mask = fusion.widen(template.like().fit(fused_val, yv).predict_set(fused_test), image_mask, disagree)
    ind = test.arrays["in_distribution"].astype(bool)
    policy = bundle.policy()
    out: dict[str, Any] = {}
    for name, mask in (("image", image_mask), ("facts", fused_mask)):
        cov = coverage_report(mask, yt, spec.class_ids)
        out[name] = {"coverage": cov["coverage"], "mean_set_size": float(mask.sum(1).mean()),
                     "min_class_coverage": cov["min_class_coverage"], "per_class_coverage": cov["per_class_coverage"],
                     "min_critical_class_coverage": min(cov["per_class_coverage"][spec.class_ids[i]]
                                                        for i in spec.critical_indices)}
    for rule, pol in (("shipped", policy), ("set_rule", dataclasses.replace(policy, critical_threshold=None))):
        levels = triage_levels(pt, image_mask, ind, spec, policy=pol, fused=(fused_test, fused_mask, disagree))
        out["facts"][f"critical_miss_rate_{rule}"] = critical_miss_rate(levels, yt, spec)
        out["facts"][f"over_triage_rate_{rule}"] = over_triage_rate(levels, yt, spec)
        agree = level_agreement(levels, yt, spec)  # what the critical-miss line cannot see: consultation -> self care
        out["facts"][f"below_own_level_rate_{rule}"] = agree["below_own_level_rate"]
        out["facts"][f"above_own_level_rate_{rule}"] = agree["above_own_level_rate"]
    return out


def main() -> None:
    suffix = "_dihedral" if sys.argv[1:] == ["--dihedral"] else ""
    t0 = time.perf_counter()
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    rows = {e.id: dict(e.facts) for e in ds}
    pairs = []
    for k in range(len(PAIRS)):
        bundle = load_bundle(HERE / f"ensemble_{k}{suffix}")
        val, test = evaluate(bundle, ds, splits, split="val"), evaluate(bundle, ds, splits)
        assert bundle.facts is not None
        fused_val = bundle.facts.fuse(val.arrays["proba"], [rows[i] for i in val.ids])[0]
        fused_test, _, disagree = bundle.facts.fuse(test.arrays["proba"], [rows[i] for i in test.ids])
        pairs.append({v: variant_figures(bundle, val, test, (fused_val, fused_test, disagree), v == "pooled")
                      for v in VARIANTS})
    metrics: dict[str, Any] = {}
    for v in VARIANTS:
        for src in ("image", "facts"):
            keys = [key for key, x in pairs[0][v][src].items() if isinstance(x, float)]
            metrics[f"{v}_{src}"] = {key: round(statistics.fmean(p[v][src][key] for p in pairs), 4) for key in keys}
            metrics[f"{v}_{src}"]["per_class_coverage"] = {
                c: round(statistics.fmean(p[v][src]["per_class_coverage"][c] for p in pairs), 4)
                for c in pairs[0][v][src]["per_class_coverage"]}
            metrics[f"{v}_{src}_over_pairs"] = {key: spread([p[v][src][key] for p in pairs]) for key in keys}
    head = metrics["pooled_facts"]  # the sets the shipped bundles would give with the option
    metrics |= {"mean_set_size": head["mean_set_size"], "coverage": head["coverage"],
                "min_critical_class_coverage": head["min_critical_class_coverage"]}
    print(write_result(
        f"ham10000_pooled_sets{suffix}", "ham10000", time.perf_counter() - t0, metrics,
        {"mean_set_size": 1.6, "min_critical_class_coverage": 0.85},
        baseline={"name": "one threshold per class (the default; the ham10000 case)",
                  "metrics": {"mean_set_size": metrics["class_facts"]["mean_set_size"],
                              "coverage": metrics["class_facts"]["coverage"]}},
        notes="command: python bench/pooled_sets.py (after python bench/ensemble.py; --dihedral: the same pairs over "
              "8 views, bench/views.py's bundles); the two shipped ensemble bundles (pairs s0+s1, s2+s3), each run on validation and test with carelens.report.evaluate; per variant the "
              "image's LAC sets (alpha 0.1) and the image + facts sets (the bundle's facts fusion, its sets refitted, "
              "widened to the image's on disagreement) fitted on validation, read on test; mean over the pairs. "
              "class: one threshold per class (calibrate's default); pooled: calibrate --pool-noncritical (bkl, df, "
              "nv, vasc share one threshold). *_shipped: the bundle's decision rule (critical probability >= its "
              "threshold); *_set_rule: the most urgent class in the set; below/above_own_level_rate: the share of test cases "
              "given a less / more urgent level than their class's own (a vascular lesion, consultation, answered self "
              "care is below its level without being a critical miss)."))


if __name__ == "__main__":
    main()
