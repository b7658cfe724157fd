"""What the out-of-distribution rule buys and costs (issue 16, item 1): case `ood_decision_ham10000`.

Usage: python bench/ood_decision.py   (after python bench/ensemble.py: it reads the two shipped ensemble bundles,
bench/out/ham10000_ensemble/ensemble_0 and _1; about 4 minutes on 2 cores)

carelens answers an image its gate flags "cannot assess this image, retake it" at the floor level (`consultation`) at
least, and keeps a higher level that the image's findings call for (an urgent-looking finding on an unusual image still
escalates). The issue (and DESIGN.md) put such input at the floor alone. Both are measured on the same bundles:
- on the lesion-grouped HAM10000 test split (carelens.report.evaluate): critical-miss and over-triage rates as shipped
  and with the out-of-distribution images at the floor alone; how many test images the gate flags, how many of those
  are critical lesions, and how many of those the shipped rule escalates;
- on images that are not dermoscopy at all, the far set (photographs, documents, charts, noise) and the near set
  (other medical modalities): the share flagged, and the share still sent to `consultation_24` by the shipped rule
  (the floor alone sends none).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result
from _ood_sets import far_ood, modality
from ood_seeds import NEAR

from carelens.bundle import load_bundle
from carelens.data import open_dataset, split_dataset
from carelens.labels import TRIAGE_LEVELS
from carelens.policy import URGENT
from carelens.predict import Engine
from carelens.report import evaluate

BUNDLES = [OUT / "ham10000_ensemble" / f"ensemble_{k}" for k in (0, 1)]


def on_test(bundle_dir: Path, ds: Any, splits: Any) -> dict[str, Any]:
    bundle = load_bundle(bundle_dir)
    ev = evaluate(bundle, ds, splits)
    m, a = ev.metrics, ev.arrays
    flagged = ~a["in_distribution"].astype(bool)
    critical = np.isin(a["y"], bundle.labels.critical_indices)
    urgent = a["triage_rank"] >= TRIAGE_LEVELS.index(URGENT)
    return {"critical_miss_rate": m["critical_miss_rate"], "over_triage_rate": m["over_triage_rate"],
            "critical_miss_rate_ood_at_floor": m["critical_miss_rate_ood_at_floor"],
            "over_triage_rate_ood_at_floor": m["over_triage_rate_ood_at_floor"],
            "test_images": len(flagged), "test_critical": int(critical.sum()),
            "test_flagged": int(flagged.sum()), "test_flagged_critical": int((flagged & critical).sum()),
            "test_flagged_critical_escalated": int((flagged & critical & urgent).sum()),
            "test_flagged_routine_escalated": int((flagged & ~critical & urgent).sum()),
            "flagged_critical_scores": a["ood_raw"][flagged & critical]}


def off_distribution(bundle_dir: Path, flagged_critical_scores: np.ndarray) -> dict[str, Any]:
    """Far and near sets: flagged, sent to urgent care; and whether a second threshold on the gate's score (the
    largest validation score) could tell them from the critical lesions the gate flags."""
    engine = Engine(load_bundle(bundle_dir), batch_size=16)
    second = float(engine.bundle.ood.val_scores_.max())
    out: dict[str, Any] = {"validation_max_score": round(second, 3),
                           "flagged_critical_above_validation_max": int((flagged_critical_scores > second).sum()),
                           "flagged_critical_score_max": round(float(flagged_critical_scores.max(initial=0)), 3)}
    for kind, images in (("far", list(far_ood().values())), ("near", [i for m in NEAR for i in modality(m, 50)])):
        levels, scores = [], []
        for k in range(0, len(images), 16):
            inf = engine.infer(images[k : k + 16])
            levels += [engine.decide(inf, n).triage.level for n in range(len(inf.logits))]
            scores += inf.ood_raw.tolist()
        out[f"{kind}_images"] = len(levels)
        out[f"{kind}_flagged"] = float(np.mean(np.asarray(scores) > engine.bundle.ood.threshold_))
        out[f"{kind}_sent_to_{URGENT}"] = float(np.mean([lv == URGENT for lv in levels]))
        out[f"{kind}_score_median"] = round(float(np.median(scores)), 3)
        out[f"{kind}_above_validation_max"] = float(np.mean(np.asarray(scores) > second))
    return out


def main() -> None:
    missing = [str(b) for b in BUNDLES if not (b / "bundle.json").is_file()]
    if missing:
        raise SystemExit(f"bundles missing: {missing}; run python bench/ensemble.py first")
    t0 = time.perf_counter()
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    rows = []
    for b in BUNDLES:
        test = on_test(b, ds, splits)
        rows.append(test | off_distribution(b, test.pop("flagged_critical_scores")))
    for r in rows:
        print(r, flush=True)
    metrics: dict[str, Any] = {key: round(statistics.fmean(r[key] for r in rows), 4) for key in rows[0]}
    metrics["per_bundle"] = rows
    print(write_result(
        "ood_decision_ham10000", "ham10000", time.perf_counter() - t0, metrics, {"critical_miss_rate": 0.02},
        notes="command: python bench/ood_decision.py; the two shipped ensemble bundles of ham10000_ensemble (pairs s0+s1, "
              "s2+s3, with flips), mean over the two (per_bundle: each). *_ood_at_floor: the same decisions with every "
              "image the gate flags answered at the floor level (consultation) alone, as the issue and DESIGN.md word "
              "it; the shipped rule keeps a higher level. test_flagged_critical_escalated: critical lesions (akiec, bcc, "
              "mel) the gate flags that the shipped rule still sends to consultation_24, which the floor alone would "
              "miss. far/near: images that are not dermoscopy (bench/_ood_sets.py), 50 per near modality. "
              "*_above_validation_max: above the largest validation score, a candidate second threshold (beyond it, the "
              "floor alone) that would keep the critical lesions the gate flags escalated only if none scored above it."))


if __name__ == "__main__":
    main()
