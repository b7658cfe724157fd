"""Clinical bundles (issue 15). Usage: python bench/clinical.py [heart_bundle] [horse_colic_bundle] [heart_external]

Each case builds the bundle as `carelens clinical build` does (5-fold cross-validation, grouped by hospital
number for horse colic; temperature and conformal threshold fitted out of fold; the model refitted on all
rows), reports the out-of-fold figures, and checks that the bundle answers exactly as the benchmarked recipe
(`TabularModel(C=0.3)` on the same rows, `bench/symptoms.py heart|horse_colic`) on every row.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result

from carelens.bundle import TabularBundle
from carelens.errors import DataError
from carelens.fusion import TabularModel
from carelens.report import evaluate_table
from carelens.settings import data_root
from carelens.steps import build_clinical
from carelens.symptoms import HEART, HORSE_COLIC, load_heart, load_horse_colic


def run(case: str) -> None:
    t0 = time.perf_counter()
    source = case.removesuffix("_bundle")
    out = OUT / case / "bundle"
    m = build_clinical(source, out)
    b = TabularBundle.load(out)
    if source == "heart":
        rows, y = load_heart(data_root() / "uci_heart_disease")
        table = HEART
    else:
        rows, y, _ = load_horse_colic(data_root() / "veterinary" / "uci_horse_colic")
        table = HORSE_COLIC
    recipe = TabularModel(table["numeric"], table["categorical"], C=0.3).fit(rows, y, 2)
    diff = float(np.abs(b.logits(rows) - recipe.model_.decision_function(recipe.encoder_.transform(rows))).max())
    t = time.perf_counter()
    for r in rows:
        b.assess(r)
    per_case_ms = (time.perf_counter() - t) / len(rows) * 1000
    wall = time.perf_counter() - t0
    metrics = {**{k: v for k, v in m.items() if k != "per_class"}, "per_class": m["per_class"],
               "coverage_gap": abs(m["coverage"] - m["coverage_target"]), "max_abs_logit_diff_vs_recipe": diff,
               "assess_ms_per_case": round(per_case_ms, 3), "wall_s": round(wall, 2)}
    targets = {"auc": 0.90, "ece": 0.05, "coverage_gap": 0.03} if source == "heart" else {"ece": 0.05, "coverage_gap": 0.03}
    print(write_result(case, "uci_heart_disease/cleveland" if source == "heart" else "veterinary/uci_horse_colic",
                       wall, metrics, targets, split="5-fold CV (out of fold)" + (", grouped by hospital number"
                                                                                    if source != "heart" else ""),
                       notes=f"command: python bench/clinical.py {case}; logistic regression C=0.3, missing values as "
                             "explicit indicators; temperature and conformal (alpha 0.1, LAC, marginal) fitted out of "
                             "fold, coverage cross-fitted; the decision rule (set rule, or escalation at a critical "
                             "probability) chosen on the out-of-fold rows for critical-miss <= 0.02 with the lowest "
                             "over-triage; critical_miss_rate / over_triage_rate: that procedure cross-fitted (each "
                             "fold decided by the rule chosen on the others), *_set_rule: the set rule alone (null: no "
                             "outcome triages below consultation_24); triage_agreement: that procedure's level for each "
                             "row against the row's own outcome level (counts[own][given], shares less urgent / same / "
                             "more urgent); the shipped model is refitted on all rows"))


def heart_external() -> None:
    """The Cleveland-built bundle (heart_bundle's) on the UCI set's other clinics, as `carelens evaluate` measures
    a table of cases: Hungary, Switzerland, the VA hospital in Long Beach."""
    t0 = time.perf_counter()
    b = TabularBundle.load(OUT / "heart_bundle" / "bundle")
    sites: dict[str, Any] = {}
    for site in ("hungarian", "switzerland", "va"):
        rows, y = load_heart(data_root() / "uci_heart_disease", site)
        try:
            m = evaluate_table(b, rows, y, source=f"uci_heart_disease/{site}").metrics
        except DataError as exc:  # every row refused
            sites[site] = {"rows": len(rows), "assessed": 0, "refused": len(rows), "why": str(exc)}
            continue
        sites[site] = {k: m[k] for k in ("rows", "assessed", "refused", "balanced_accuracy", "accuracy", "macro_auc",
                                         "ece", "coverage", "mean_set_size", "critical_miss_rate", "over_triage_rate",
                                         "triage_agreement", "prevalence", "per_class_recall")}
    hu = sites["hungarian"]
    metrics = {**{k: hu[k] for k in ("balanced_accuracy", "macro_auc", "ece", "coverage", "critical_miss_rate",
                                     "over_triage_rate")}, "sites": sites,
               "at_build": {k: b.spec.metrics.get(k) for k in ("auc", "balanced_accuracy", "ece", "coverage",
                                                               "critical_miss_rate", "over_triage_rate")}}
    print(write_result("heart_external", "uci_heart_disease (hungarian, switzerland, va)", time.perf_counter() - t0,
                       metrics, {}, split="external (other clinics)",
                       notes="command: python bench/clinical.py heart_external (after heart_bundle); the bundle built "
                             "on Cleveland (303 patients) answers every row of each other clinic as carelens evaluate "
                             "does (carelens.report.evaluate_table): rows with a required input missing or out of "
                             "range are refused and counted (Switzerland codes missing cholesterol as 0, so every "
                             "row is refused); headline figures: Hungary; the decision rule is the bundle's own "
                             "(chosen on Cleveland out of fold), not refitted."))


CASES = {"heart_bundle": lambda: run("heart_bundle"), "horse_colic_bundle": lambda: run("horse_colic_bundle"),
         "heart_external": heart_external}

if __name__ == "__main__":
    for c in sys.argv[1:] or list(CASES):
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r}; known: {', '.join(CASES)}")
        CASES[c]()
