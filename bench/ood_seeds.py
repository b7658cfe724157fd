"""The out-of-distribution gate over several training seeds (issue 16): a gate's quality depends on the training
run, so the figure that counts is the worst of the seeds.

Usage: python bench/ood_seeds.py RUN_DIR [RUN_DIR ...]   (HAM10000 runs, e.g. bench/out/ham_options/progressive224_s*/run)
Each run is calibrated (gate fitted on its validation split), exported, and measured on its test split against
the far set (photographs, documents, charts, noise, blank) and the near set (chest X-ray, breast ultrasound,
fundus photographs). Writes ood_ham10000_seeds.json: the worst value of each figure over the runs, and each run's.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _common import OUT, resized_images, write_result
from _ood_sets import measure_ood

from carelens.steps import Run, calibrate_run
from carelens.steps.export import load_run_model
from carelens.train import predict_logits

NEAR = ("xray", "ultrasound", "fundus")
HEADLINE = ("ood_auroc_far", "ood_auroc_near", "ood_pass_rate")


def rescore(run_dir: Path) -> None:
    """A run trained before the features held the middle stage's statistics: score its splits again with the
    current model code (same weights, so the same logits) and rewrite predictions.npz."""
    r = Run(run_dir)
    pred = r.predictions()
    model = load_run_model(r)
    pre = r.config.train.preprocess
    with torch.inference_mode():
        width = model.forward_all(torch.zeros(1, 3, pre.image_size, pre.image_size))[1].shape[1]
    if width == pred.val_features.shape[1]:
        return
    ds, splits = r.data()
    new: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        logits, feats = predict_logits(model, resized_images(ds, splits.indices(ds, split), pre), pre,
                                       with_features=True)
        assert np.abs(logits - getattr(pred, f"{split}_logits")).max() < 1e-3, "the weights did not give the run's logits"
        new[f"{split}_features"] = feats  # type: ignore[assignment]
    r.write_predictions(dataclasses.replace(pred, **new))


def main(runs: list[Path]) -> None:
    if len(runs) < 2:
        raise SystemExit("give at least two HAM10000 run folders (different seeds of one recipe)")
    t0 = time.perf_counter()
    per_run: list[dict[str, Any]] = []
    for k, run_dir in enumerate(runs):
        rescore(run_dir)
        cal = calibrate_run(run_dir)
        m = measure_ood(run_dir, OUT / "ood_ham10000_seeds" / f"bundle_{k}", {"": cal.ood}, NEAR, "ham_seed")
        per_run.append({"run": str(run_dir), "seed": Run(run_dir).config.train.seed, **m})
        print({h: round(m[h], 4) for h in HEADLINE}, m["far_passed"])
    metrics: dict[str, Any] = {h: min(r[h] for r in per_run) for h in HEADLINE}
    metrics |= {f"{h}_per_seed": [round(r[h], 4) for r in per_run] for h in HEADLINE}
    metrics["runs"] = per_run
    print(write_result(
        "ood_ham10000_seeds", "ham10000", time.perf_counter() - t0, metrics,
        {"ood_auroc_far": 0.99, "ood_auroc_near": 0.95, "ood_pass_rate": 0.95},
        notes="command: python bench/ood_seeds.py " + " ".join(map(str, runs)) + "; headline = the worst of the "
              "runs (different training seeds of one recipe); gate 'combined' (the shipped one: probabilistic-PCA "
              "covariance of 128 components, k-NN bank of 1,000 training images) fitted on each run's validation "
              "split, threshold passing 95% of in-distribution images with probability 0.95 over the validation "
              "draw (a training-conditional order statistic; with the plain 95% quantile before it the pass rates "
              "were 0.954, 0.946, 0.945 and the near sets flagged at the threshold 0.978, 0.998, 1.000); pass rate "
              "on test. Far: scikit-image / scikit-learn photographs "
              "and documents, matplotlib charts (incl. an MIT-BIH ECG strip), noise, blank. Near: 150 each of "
              "PneumoniaMNIST, BUSI, ODIR-5K fundus."))


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
