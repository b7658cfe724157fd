"""Clinical facts entering the head jointly, against late fusion (issue 16, item 2): case `ham10000_facts_head`.

The shipped HAM10000 bundle fuses age, sex and lesion site after the image (`carelens calibrate`: a facts model on the
training split, log-linear pooling with a weight fitted on validation). The issue names the other way as an option:
the facts entering the classifier's head beside the image features. Measured here without retraining the backbone:
the chosen recipe's first pair of runs (bench/out/ham_options/size160_s0, s1), their pooled image features (the
head's input, the mean over the image and its two flips, which a linear head sees exactly as it sees the mean of the
views), and on those features, fitted on the training split with class-balanced weights:

- `refit_head`: a linear head on the image features alone (C: L2 strength, features standardised);
- `joint_head`: the same head on the image features and the encoded facts (carelens.fusion.FactsEncoder, the
  encoding the shipped facts model uses; the facts columns scaled by `facts_scale` against the penalty);
- each head and the runs' own heads (`run_head`) with the shipped late fusion on top (`+ late facts`:
  carelens.fusion.FactsFusion, its weight and sets fitted on four fifths of validation and read on the fifth).

All on VALIDATION only (the pair's mean probabilities; balanced accuracy of the argmax, NLL): a comparison of
options, not a test figure. Backbone features of images a network was fine-tuned on are not those of new images (the
refit heads start below the runs' own), which is why each option is read beside the same head with late fusion.

Usage: python bench/facts_head.py   (features cached in bench/out/facts_head/: about 8 minutes on 2 cores the first
time, seconds after)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, resized_images, write_result
from ensemble import PAIRS, fused_cross_fitted, run_dir
from ham_options import flip_views

from carelens.data import open_dataset, split_dataset
from carelens.fusion import FactsEncoder, LinearModel, infer_fact_kinds
from carelens.metrics import balanced_accuracy, nll, softmax
from carelens.steps import Run
from carelens.steps.export import load_run_model
from carelens.train import predict_logits

HERE = OUT / "facts_head"
SEEDS = PAIRS[0]
STRENGTHS = (0.01, 0.1, 1.0)
FACTS_SCALES = (1.0, 3.0)


def features(seed: int, split: str, ds: Any, splits: Any) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled image features) of a run on a split, each the mean over the image and its two flips (the
    training split: the image alone); cached."""
    cache = HERE / f"s{seed}_{split}.npz"
    if not cache.is_file():
        HERE.mkdir(parents=True, exist_ok=True)
        r = Run(run_dir(seed))
        pre = r.config.train.preprocess
        images = resized_images(ds, splits.indices(ds, split), pre)
        model = load_run_model(r)
        out = [predict_logits(model, np.ascontiguousarray(v), pre, with_features=True)
               for v in flip_views(images, 1 if split == "train" else 3)]
        width = model.head.linear()[0].shape[1]  # the pooled features come first, the gate's statistics after
        np.savez(cache, logits=np.stack([lo for lo, _ in out]), feats=np.stack([fe[:, :width] for _, fe in out]))
    with np.load(cache) as z:
        return z["logits"].mean(0), z["feats"].mean(0)


def main() -> None:
    t0 = time.perf_counter()
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    class_ids = Run(run_dir(SEEDS[0])).config.class_ids
    rows = {s: [dict(ds[i].facts) for i in splits.indices(ds, s)] for s in ("train", "val")}
    y = {s: np.array([class_ids.index(ds[i].label) for i in splits.indices(ds, s)]) for s in ("train", "val")}
    encoder = FactsEncoder(*infer_fact_kinds(rows["train"])).fit(rows["train"])
    facts = {s: encoder.transform(rows[s]) for s in rows}
    k = len(class_ids)
    probs: dict[str, list[np.ndarray]] = {}
    for seed in SEEDS:
        (_, f_train), (logits_val, f_val) = features(seed, "train", ds, splits), features(seed, "val", ds, splits)
        probs.setdefault("run_head", []).append(softmax(logits_val))
        mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
        x_train, x_val = (f_train - mu) / sd, (f_val - mu) / sd
        for c in STRENGTHS:
            head = LinearModel(C=c, class_weight="balanced").fit(x_train, y["train"], k)
            probs.setdefault(f"refit_head_C{c:g}", []).append(head.predict_proba(x_val))
            for scale in FACTS_SCALES:
                joint = LinearModel(C=c, class_weight="balanced").fit(np.hstack([x_train, scale * facts["train"]]),
                                                                     y["train"], k)
                probs.setdefault(f"joint_head_C{c:g}_facts_scale{scale:g}", []).append(
                    joint.predict_proba(np.hstack([x_val, scale * facts["val"]])))
    options: dict[str, Any] = {}
    for name, per_seed in probs.items():
        pair = np.mean(per_seed, axis=0)
        row = {"val_balanced_accuracy_seeds": [round(balanced_accuracy(y["val"], p.argmax(1), k), 4) for p in per_seed],
               "val_balanced_accuracy": round(balanced_accuracy(y["val"], pair.argmax(1), k), 4),
               "val_nll": round(nll(pair, y["val"]), 4)}
        fused = fused_cross_fitted(pair, y["val"], rows["val"], rows["train"], y["train"])[0]
        row["val_balanced_accuracy_late_facts"] = round(balanced_accuracy(y["val"], fused.argmax(1), k), 4)
        row["val_nll_late_facts"] = round(nll(fused, y["val"]), 4)
        options[name] = row
        print(name, row, flush=True)
    best = {kind: max((n for n in options if n.startswith(kind)), key=lambda n: options[n]["val_balanced_accuracy"])
            for kind in ("refit_head", "joint_head")}
    metrics = {"options": options, "best_refit_head": best["refit_head"], "best_joint_head": best["joint_head"],
               "joint_head_gain": round(options[best["joint_head"]]["val_balanced_accuracy"]
                                        - options[best["refit_head"]]["val_balanced_accuracy"], 4),
               "late_facts_gain_on_refit_head": round(options[best["refit_head"]]["val_balanced_accuracy_late_facts"]
                                                      - options[best["refit_head"]]["val_balanced_accuracy"], 4),
               "late_facts_gain_on_run_head": round(options["run_head"]["val_balanced_accuracy_late_facts"]
                                                    - options["run_head"]["val_balanced_accuracy"], 4)}
    print(write_result(
        "ham10000_facts_head", "ham10000", time.perf_counter() - t0, metrics, {}, split="val",
        notes="command: python bench/facts_head.py; the ham10000 case's first pair of runs (bench/out/ham_options/"
              "size160_s0, s1; split_dataset(ham10000, (0.7, 0.1, 0.2), seed=0), lesion-grouped); pooled image "
              "features (mean over the image and its two flips; train: the image alone); heads fitted on the "
              "training split (carelens.fusion.LinearModel, class-balanced, features standardised); joint_head: the "
              "facts (age, sex, lesion site, carelens.fusion.FactsEncoder) beside the features, scaled by facts_scale; "
              "*_late_facts: the shipped late fusion (carelens.fusion.FactsFusion) on the pair's probabilities, "
              "5-fold cross-fitted on validation. Validation only; the pair's mean probabilities, argmax."))


if __name__ == "__main__":
    main()
