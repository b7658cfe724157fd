"""The `ham10000_logit_adjust` case (issue 16: balanced accuracy and melanoma recall): does a post-hoc logit
adjustment (Menon et al., *Long-tail learning via logit adjustment*, ICLR 2021: logits - tau * log(prior), the prior
being the training split's class shares) raise balanced accuracy above the balanced sampler alone?

Why a fresh split: an earlier exploration (session 15's note) tuned tau on the validation split of the seed-0 split
that the `ham10000` case is measured on, and printed that split's test figures too; tau = 0.25 raised the two-seed
mean validation balanced accuracy 0.682 -> 0.698. Its test figures were seen, so that split cannot judge it. Here the
`ham10000` recipe (bench/ham_recipe.py's chosen candidate: the demo recipe at 160 px, 3 fine-tune epochs, flips) is
trained on a split no earlier work read (split_dataset(ham10000, (0.7, 0.1, 0.2), seed=1), lesion-grouped), 2 seeds.
Set in advance, before any of its figures were seen:
- tau is chosen on this split's validation (mean balanced accuracy with flips over the seeds, grid 0 to 1 by 0.05);
- test figures are read at tau = 0 (the shipped behaviour), at the chosen tau, and at 0.25 (the earlier estimate);
- adopted only if the chosen tau raises the mean test balanced accuracy by more than the seed spread.

Usage: python bench/logit_adjust.py   (about 15-20 minutes a seed on 2 cores; nothing else should run)
Runs: bench/out/logit_adjust/s<seed>/run (a seed whose training finished is not trained again).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, resized_images, write_result
from ham_options import DEMO, OPTIONS, metrics_of, run_logits, spread

from carelens.data import open_dataset, split_dataset
from carelens.steps import Run
from carelens.train import TrainConfig, train

HERE = OUT / "logit_adjust"
SPLIT_SEED = 1  # the `ham10000` case and every earlier HAM10000 benchmark use seed 0
SEEDS = (0, 1)
TAUS = tuple(round(0.05 * k, 2) for k in range(21))
EARLIER_TAU = 0.25


def trained(seed: int, ds: Any, splits: Any) -> tuple[Path, float]:
    run_dir = HERE / f"s{seed}" / "run"
    done = HERE / f"s{seed}" / "train_wall.json"
    if done.is_file():
        return run_dir, float(json.loads(done.read_text())["wall_s"])
    cfg = TrainConfig.from_dict({**DEMO, **OPTIONS["size160"], "seed": seed})
    t0 = time.perf_counter()
    train(ds, splits, cfg, run_dir)
    wall = time.perf_counter() - t0
    done.write_text(json.dumps({"wall_s": round(wall, 1)}))
    return run_dir, wall


def flips_logits(run_dir: Path, ds: Any, splits: Any, split: str) -> np.ndarray:
    """Mean logits over the image and its two flips, as the flips bundle computes them (cached)."""
    cache = run_dir.parent / f"{split}_flips_logits.npy"
    if cache.is_file():
        return np.load(cache)
    images = resized_images(ds, splits.indices(ds, split), Run(run_dir).config.train.preprocess)
    logits = run_logits(run_dir, images, tta=True)
    np.save(cache, logits)
    return logits


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=SPLIT_SEED)
    t0 = time.perf_counter()
    runs = [trained(seed, ds, splits) for seed in SEEDS]
    labels = ds.labels
    per_seed: list[dict[str, Any]] = []
    for (run_dir, wall), seed in zip(runs, SEEDS, strict=True):
        r = Run(run_dir)
        classes = r.config.class_ids
        train_y = np.asarray([classes.index(labels[i]) for i in splits.indices(ds, "train")])
        log_prior = np.log(np.bincount(train_y, minlength=len(classes)) / len(train_y))
        pred = r.predictions()
        val, test = flips_logits(run_dir, ds, splits, "val"), flips_logits(run_dir, ds, splits, "test")
        assert len(val) == len(pred.val_y) and len(test) == len(pred.test_y), "an unreadable image: flips misaligned"
        per_seed.append({"seed": seed, "train_wall_s": wall, "classes": classes,
                         "val": {t: metrics_of(pred.val_y, val - t * log_prior, classes) for t in TAUS},
                         "test_logits": (pred.test_y, test, log_prior)})
    val_ba = {t: float(np.mean([s["val"][t]["balanced_accuracy"] for s in per_seed])) for t in TAUS}
    chosen = max(TAUS, key=lambda t: (round(val_ba[t], 6), -t))  # the smallest tau among equals
    # validation chose tau: only now is the test split read
    test: dict[str, Any] = {}
    for name, tau in (("tau0", 0.0), ("chosen", chosen), ("earlier", EARLIER_TAU)):
        rows = []
        for s in per_seed:
            y, logits, log_prior = s["test_logits"]
            rows.append(metrics_of(y, logits - tau * log_prior, s["classes"]))
        test[name] = {"tau": tau, "balanced_accuracy": spread([m["balanced_accuracy"] for m in rows]),
                      "accuracy": spread([m["accuracy"] for m in rows]),
                      "mel_recall": spread([m["per_class_recall"]["mel"] for m in rows]),
                      "per_class_recall": {c: round(float(np.mean([m["per_class_recall"][c] for m in rows])), 4)
                                           for c in rows[0]["per_class_recall"]}}
    gain = test["chosen"]["balanced_accuracy"]["mean"] - test["tau0"]["balanced_accuracy"]["mean"]
    seed_spread = test["tau0"]["balanced_accuracy"]["max"] - test["tau0"]["balanced_accuracy"]["min"]
    metrics = {
        "chosen_tau": chosen, "val_balanced_accuracy_by_tau": {str(t): round(v, 4) for t, v in val_ba.items()},
        "balanced_accuracy": test["chosen"]["balanced_accuracy"]["mean"],
        "balanced_accuracy_tau0": test["tau0"]["balanced_accuracy"]["mean"],
        "balanced_accuracy_gain": round(gain, 4), "seed_spread_tau0": round(seed_spread, 4),
        "adopt": bool(chosen > 0 and gain > seed_spread),
        "mel_recall": test["chosen"]["mel_recall"]["mean"], "mel_recall_tau0": test["tau0"]["mel_recall"]["mean"],
        "test": test, "train_wall_s": [s["train_wall_s"] for s in per_seed],
    }
    print(write_result("ham10000_logit_adjust", "ham10000", time.perf_counter() - t0, metrics, {}, split="test",
                       notes="command: python bench/logit_adjust.py; split_dataset(ham10000, (0.7, 0.1, 0.2), seed=1) "
                             "(lesion-grouped; a split no earlier benchmark read), the ham10000 case's recipe (demo "
                             "recipe at 160 px, 3 fine-tune epochs), seeds 0 and 1, flips logits (image and its two "
                             "flips); tau chosen on validation (mean balanced accuracy over seeds), the test split "
                             "read after; prior = training split class shares; spreads are min-max over seeds"))


if __name__ == "__main__":
    main()
