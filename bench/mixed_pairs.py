"""Ensembles of two backbones (issue 16, item 2): case `ham10000_mixed_pairs`, validation only.

The shipped HAM10000 recipe averages two seeds of one network (EfficientNet-Lite0 at 160 px, bench/ensemble.py).
Members that differ more usually ensemble better, and EfficientNet-Lite1 at 160 px trains in about the time of a
Lite0 seed here (13-15 minutes), so a Lite0 + Lite1 pair fits the same 45-minute budget. Measured on VALIDATION only
(argmax of the mean logits, each member with flips, as bench/ensemble.py's candidates): the Lite0 pairs (s0+s1,
s2+s3) against the mixed pairs that share no run (Lite0 s0 + Lite1 s0, Lite0 s1 + Lite1 s1), and every Lite0 seed with
every Lite1 seed for the spread. Not a candidate of the `ham10000` case: measured (2026-11-28) the mixed pairs
gain nothing over the Lite0 pairs (0.710 against 0.709; one Lite1 seed alone had suggested +0.01), and `carelens
export --ensemble` takes members of one recipe (one backbone), so a mixed pair could not be shipped as one bundle.

Usage: python bench/mixed_pairs.py   (trains the Lite1 runs, bench/ham_options.py's size160_lite1 option, seeds 0
and 1, unless they are there: about 30 minutes on 2 cores; pip install -e ".[lite12]" first)
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result
from ensemble import PAIRS, SEEDS, group_logits, run_val_views, train_wall_s, val_views
from ham_options import HERE as OPTIONS_DIR
from ham_options import metrics_of, one, spread

from carelens.data import open_dataset, split_dataset
from carelens.steps import Run

HERE = OUT / "ham10000_mixed"
LITE1_SEEDS = (0, 1)


def lite1_views(seed: int, ds: Any, splits: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels, logits per view) of the Lite1 run of ``seed`` on the validation split, trained if missing; cached."""
    one("size160_lite1", seed, ds, splits)
    return run_val_views(OPTIONS_DIR / f"size160_lite1_s{seed}" / "run", HERE / f"val_views_lite1_s{seed}.npz", ds, splits)


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    views: dict[Any, tuple[np.ndarray, list[np.ndarray]]] = {s: val_views(s, ds, splits) for s in SEEDS}
    views |= {f"lite1_s{s}": lite1_views(s, ds, splits) for s in LITE1_SEEDS}
    y = views[SEEDS[0]][0]
    assert all(np.array_equal(y, v[0]) for v in views.values()), "the runs' validation images differ"
    class_ids = Run(OPTIONS_DIR / "size160_lite1_s0" / "run").config.class_ids

    def figures(groups: list[tuple[Any, ...]]) -> dict[str, Any]:
        rows = [metrics_of(y, group_logits(views, g, flips=True), class_ids) for g in groups]
        return {"members": [[str(m) for m in g] for g in groups],
                "val_balanced_accuracy": spread([r["balanced_accuracy"] for r in rows]),
                "val_mel_recall": spread([r["per_class_recall"]["mel"] for r in rows]),
                "val_macro_auc": spread([r["macro_auc"] for r in rows])}

    lite1 = [f"lite1_s{s}" for s in LITE1_SEEDS]
    metrics: dict[str, Any] = {
        "lite0_single": figures([(s,) for s in SEEDS]),
        "lite1_single": figures([(m,) for m in lite1]),
        "lite0_pairs": figures(list(PAIRS)),
        "mixed_pairs": figures([(s, m) for s, m in zip(SEEDS, lite1, strict=False)]),  # s0+L0, s1+L1: no run shared
        "mixed_pairs_all": figures(list(itertools.product(SEEDS, lite1))),
        "lite0_pair_plus_lite1": figures([(*PAIRS[0], m) for m in lite1]),
    }
    walls = {f"lite1_s{s}": json.loads((OPTIONS_DIR / f"size160_lite1_s{s}" / "result.json").read_text())["wall_s"]
             for s in LITE1_SEEDS}
    metrics["train_wall_s"] = {**{f"lite0_s{s}": train_wall_s(s) for s in SEEDS}, **walls}
    metrics["mixed_pair_gain"] = round(metrics["mixed_pairs"]["val_balanced_accuracy"]["mean"]
                                       - metrics["lite0_pairs"]["val_balanced_accuracy"]["mean"], 4)
    print(write_result(
        "ham10000_mixed_pairs", "ham10000", time.perf_counter() - t0, metrics, {}, split="val",
        notes="command: python bench/mixed_pairs.py; Lite0 runs: bench/out/ham_options/size160_s0..3 (the ham10000 "
              "case's recipe); Lite1 runs: the same recipe with model efficientnet_lite1 (bench/ham_options.py option "
              "size160_lite1), seeds 0 and 1; split_dataset(ham10000, (0.7, 0.1, 0.2), seed=0), lesion-grouped. "
              "Validation only: argmax of the mean logits over the members, each the mean over the image and its two "
              "flips. train_wall_s: each run's training (lite0 s2, s3 trained beside the test suite; lite1 s0 and s1 "
              "on a slower spell of this host, nothing else running)."))


if __name__ == "__main__":
    main()
