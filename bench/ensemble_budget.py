"""Does a deep ensemble of THREE seeds of the chosen HAM10000 recipe fit the 45-minute budget now? (issue 16, item 2):
case `ham10000_ensemble_budget`.

bench/ensemble.py left three-seed ensembles out of its candidates because one seed of the recipe
(scripts/demo_ham10000.json at 160 px, 3 fine-tune epochs: bench/ham_options.py's `size160`) took 11-36 minutes on
the slower spells of these hosts. Since training's whole-split passes run in ONNX Runtime (bench/train_inference.py),
a seed costs less; this case times each seed trained alone on this host (`wall_s` of bench/out/ham_options/
size160_s<seed>/result.json: training only, as the budget counts it) and reads, on VALIDATION only, what the
ensembles gain: each seed, each pair and the three together, with flips (the mean logits over each image and its two
mirror images, as `carelens export --flips` ships them), argmax of the mean logits. No test image is read: choosing
a three-seed recipe (and its test figures with spread over two triples) is bench/ensemble.py's job once six seeds
exist.

Usage: python bench/ensemble_budget.py [SEEDS]   (SEEDS default 0,1,2; a seed not trained yet is trained first, about
11 minutes each at 160 px on 2 cores; nothing else should run)
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import resized_images, write_result
from ham_options import HERE, metrics_of, one, spread, view_logits

from carelens.data import open_dataset, split_dataset
from carelens.steps import Run

OPTION = "size160"
BUDGET_S = 45 * 60


def main(argv: list[str]) -> None:
    seeds = [int(s) for s in argv[0].split(",")] if argv else [0, 1, 2]
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    t0 = time.perf_counter()
    rows = {s: one(OPTION, s, ds, splits) for s in seeds}  # trains the seeds not trained yet
    runs = {s: HERE / f"{OPTION}_s{s}" / "run" for s in seeds}
    first = Run(runs[seeds[0]])
    class_ids, y = first.config.class_ids, first.predictions().val_y
    images = resized_images(ds, splits.indices(ds, "val"), first.config.train.preprocess)
    flips = {s: np.mean(view_logits(runs[s], images), axis=0) for s in seeds}

    def figures(members: tuple[int, ...]) -> dict[str, Any]:
        m = metrics_of(y, np.mean([flips[s] for s in members], axis=0), class_ids)
        return {"balanced_accuracy": m["balanced_accuracy"], "accuracy": m["accuracy"], "macro_auc": m["macro_auc"],
                "mel_recall": m["per_class_recall"]["mel"], "train_wall_s": sum(rows[s]["wall_s"] for s in members)}

    groups = {k: [figures(c) for c in itertools.combinations(seeds, k)] for k in range(1, len(seeds) + 1)}
    names = {1: "single_flips", 2: "ensemble2_flips", 3: "ensemble3_flips", 4: "ensemble4_flips"}
    val = {names[k]: {"members": [list(c) for c in itertools.combinations(seeds, k)],
                      **{key: spread([r[key] for r in rs]) for key in rs[0]}} for k, rs in groups.items()}
    largest = val[names[len(seeds)]]
    metrics = {
        "seed_train_wall_s": {str(s): rows[s]["wall_s"] for s in seeds},
        "wall_s": largest["train_wall_s"]["max"],  # the largest ensemble's training, seeds one after another
        "fits_budget": largest["train_wall_s"]["max"] <= BUDGET_S,
        "val": val,
        "balanced_accuracy_gain_val": round(largest["balanced_accuracy"]["mean"]
                                            - val["single_flips"]["balanced_accuracy"]["mean"], 4),
    }
    print(write_result(
        "ham10000_ensemble_budget", "ham10000", time.perf_counter() - t0, metrics, {"wall_s": BUDGET_S}, split="val",
        notes=f"command: python bench/ensemble_budget.py {','.join(map(str, seeds))}; bench/ham_options.py's "
              f"{OPTION} recipe (scripts/demo_ham10000.json at 160 px, 3 fine-tune epochs), seeds "
              f"{seeds} each trained alone on this host (wall_s = the {len(seeds)} seeds' training summed, the "
              "45-minute budget's measure). Validation only (lesion-grouped split, seed 0): argmax of the mean logits "
              "over the members and over each image's 3 flip views; every single seed, pair and the whole set; "
              "spread = min/max over the combinations. No test image read."))


if __name__ == "__main__":
    main(sys.argv[1:])
