"""Image + symptoms over the same conditions (issue 14): python bench/fusion_symptoms.py [--n N]

Case ``fusion_symptoms_same_conditions``, on a generated dog dataset with known structure
(``carelens.data.write_synthetic_dog_cases``: six skin classes; a photo shows its class's mark in 60% of
cases and its pair partner's otherwise; owners report 1-3 of the dog's symptoms, drawn independently of the
photo given the class):

1. train the image model on the train rows (frozen EfficientNet-Lite0 features + head), calibrate, export;
2. build the symptom bundle from the separate generated symptom table (``--species dog``, synthetic);
3. ``carelens symptoms fuse``: the pooling weight and the fused conformal threshold fitted on the val rows;
4. the test rows, read once: balanced accuracy of the image alone, the symptoms alone and fused, and the
   critical-miss (skin mass triaged below consultation_24) and over-triage rates of the decisions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result

from carelens.bundle import load_bundle
from carelens.data import ManifestFormat, make_splits, read_manifest, write_synthetic_dog_cases
from carelens.labels import load_spec
from carelens.report import fit_symptom_fusion
from carelens.steps import calibrate_run
from carelens.steps.export import export_run
from carelens.symptoms import build_symptom_bundle, load_symptom_table
from carelens.train import TrainConfig, train

CASE = "fusion_symptoms_same_conditions"
CFG = dict(model="efficientnet_lite0", image_size=96, head_epochs=40, finetune_epochs=0, batch_size=32,
           augment="flips", imbalance=("weighted",))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1600, help="generated cases (photo + report)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = OUT / CASE
    data = write_synthetic_dog_cases(out / "data", n=args.n, seed=0, size=96)
    spec = load_spec("dog_skin")
    ds = read_manifest(data / "cases.csv", ManifestFormat()).with_spec(spec)
    cfg = TrainConfig.from_dict(CFG)
    train(ds, make_splits(ds), cfg, out / "run")
    calibrate_run(out / "run", facts=[])
    bundle_dir = export_run(out / "run", out / "bundle", name="dog_skin", version=CASE)
    sym_metrics = build_symptom_bundle(load_symptom_table(data / "symptom_table.csv", spec=spec, species="dog"),
                                       out / "symptoms", synthetic=True)
    f = fit_symptom_fusion(out / "symptoms", load_bundle(bundle_dir), data / "cases.csv")
    wall = time.perf_counter() - t0
    t = f["test"]
    metrics: dict[str, Any] = {k: t[k] for k in t if not k.startswith("per_class")}
    metrics["critical_miss_rate"] = t["critical_miss_rate_fused"]
    metrics["over_triage_rate"] = t["over_triage_rate_fused"]
    metrics["fused_minus_best_single"] = t["balanced_accuracy_fused"] - max(t["balanced_accuracy_image"],
                                                                            t["balanced_accuracy_symptoms"])
    metrics["per_class_recall"] = {"image": t["per_class_recall_image"], "symptoms": t["per_class_recall_symptoms"],
                                   "fused": t["per_class_recall_fused"]}
    metrics["symptom_model"] = sym_metrics
    metrics["val_cases"] = f["val_cases"]
    metrics["wall_s"] = round(wall, 1)
    targets = {"fused_minus_best_single": 0.0001, "critical_miss_rate": t["critical_miss_rate_image"]}
    baseline = {"name": "image alone and symptoms alone, same test cases",
                "metrics": {"balanced_accuracy_image": t["balanced_accuracy_image"],
                            "balanced_accuracy_symptoms": t["balanced_accuracy_symptoms"]}}
    print(write_result(CASE, "generated dog skin cases (synthetic: a method check, never clinical evidence)", wall,
                       metrics, targets, baseline,
                       notes=f"command: python bench/fusion_symptoms.py --n {args.n}; image config {CFG}; clarity 0.6; "
                             "fused triage keeps the image's level as a floor (never less urgent)"))


if __name__ == "__main__":
    main()
