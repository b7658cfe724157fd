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

Usage: python bench/ensemble_budget.py [--option OPTION] [SEEDS]   (SEEDS default 0,1,2; a seed not trained yet is
trained first, about 11 minutes each at 160 px on 2 cores; nothing else should run). --option: another option of
bench/ham_options.py than size160 (case ham10000_ensemble_budget_<OPTION>), e.g. progressive224.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result
from ensemble import HERE as VIEWS_DIR
from ensemble import group_logits, run_dir, val_views
from ham_options import OPTIONS, metrics_of, one, spread

from carelens.data import open_dataset, split_dataset
from carelens.steps import Run

BUDGET_S = 45 * 60


def main(argv: list[str]) -> None:
    option = "size160"
    if argv[:1] == ["--option"]:
        option, argv = argv[1], argv[2:]
    if option not in OPTIONS:
        raise SystemExit(f"unknown option {option!r}; known: {', '.join(OPTIONS)}")
    seeds = [int(s) for s in argv[0].split(",")] if argv else [0, 1, 2]
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    t0 = time.perf_counter()
    walls = {s: float(one(option, s, ds, splits)["wall_s"]) for s in seeds}  # trains the seeds not trained yet
    VIEWS_DIR.mkdir(parents=True, exist_ok=True)
    views = {s: val_views(s, ds, splits, option) for s in seeds}  # (labels, logits per flip view), cached
    class_ids = Run(run_dir(seeds[0], option)).config.class_ids

    def figures(group: tuple[int, ...]) -> dict[str, Any]:
        m = metrics_of(views[group[0]][0], group_logits(views, group, flips=True), class_ids)
        return {"balanced_accuracy": m["balanced_accuracy"], "accuracy": m["accuracy"], "macro_auc": m["macro_auc"],
                "mel_recall": m["per_class_recall"]["mel"], "train_wall_s": sum(walls[s] for s in group)}

    val: dict[str, Any] = {}
    for k in range(1, len(seeds) + 1):
        groups = list(itertools.combinations(seeds, k))
        rows = [figures(g) for g in groups]
        val["single_flips" if k == 1 else f"ensemble{k}_flips"] = {
            "members": [list(g) for g in groups], **{key: spread([r[key] for r in rows]) for key in rows[0]}}
    largest = val[f"ensemble{len(seeds)}_flips"]
    metrics = {
        "seed_train_wall_s": {str(s): walls[s] for s in seeds},
        "wall_s": largest["train_wall_s"]["max"],  # the largest ensemble's training, seeds one after another
        "fits_budget": largest["train_wall_s"]["max"] <= BUDGET_S,
        "val": val,
        "balanced_accuracy_gain_val": round(largest["balanced_accuracy"]["mean"]
                                            - val["single_flips"]["balanced_accuracy"]["mean"], 4),
    }
    print(write_result(
        "ham10000_ensemble_budget" + ("" if option == "size160" else f"_{option}"), "ham10000",
        time.perf_counter() - t0, metrics, {"wall_s": BUDGET_S}, split="val",
        notes=f"command: python bench/ensemble_budget.py {' '.join(sys.argv[1:])}; bench/ham_options.py's "
              f"{option} recipe (scripts/demo_ham10000.json with {OPTIONS[option]}, 3 fine-tune epochs), seeds "
              f"{seeds} each trained alone on this host (wall_s = the {len(seeds)} seeds' training summed, the "
              "45-minute budget's measure). Validation only (lesion-grouped split, seed 0): argmax of the mean logits "
              "over the members and over each image's 3 flip views; every single seed, pair and the whole set; "
              "spread = min/max over the combinations. No test image read."))


if __name__ == "__main__":
    main(sys.argv[1:])
