"""Training benchmarks (issue 3). Usage: python bench/train.py CASE [CASE ...]

Cases: ham10000_imbalance_<none|weighted|focal|balanced_sampler>, pneumoniamnist, busi_binary, busi_3class.
Everything is chosen on validation; the test split is read once at the end. The `ham10000` case (the recipe chosen
on validation, at the 45-minute budget, 2 seeds) is bench/ham_recipe.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result

from carelens.data import open_dataset, split_dataset
from carelens.train import TrainConfig, train

# the first HAM10000 recipe (128 px); the imbalance table runs it at 3 fine-tune epochs
HAM = dict(model="efficientnet_lite0", image_size=128, head_epochs=40, unfreeze_stages=-1, lr_finetune=1e-3,
           batch_size=32, augment="dermoscopy", patience=3)

CASES: dict[str, dict] = {
    "pneumoniamnist": dict(data="pneumoniamnist",
                           cfg=dict(model="small_cnn", image_size=28, head_epochs=0, finetune_epochs=12,
                                    lr_finetune=2e-3, batch_size=64, augment="xray", imbalance=("weighted",),
                                    patience=4, monitor="macro_auc"),
                           targets={"medmnist_acc": 0.92, "macro_auc": 0.985, "wall_s": 600}),
    "busi_binary": dict(data="busi_binary",
                        cfg=dict(model="efficientnet_lite0", image_size=160, head_epochs=40, finetune_epochs=8,
                                 unfreeze_stages=-1, lr_finetune=5e-4, batch_size=16, augment="ultrasound",
                                 imbalance=("weighted",), patience=3, monitor="macro_auc"),
                        targets={"medmnist_acc": 0.90, "macro_auc": 0.95, "wall_s": 600}),
    "busi_3class": dict(data="busi",
                        cfg=dict(model="efficientnet_lite0", image_size=160, head_epochs=40, finetune_epochs=8,
                                 unfreeze_stages=-1, lr_finetune=5e-4, batch_size=16, augment="ultrasound",
                                 imbalance=("weighted",), patience=3),
                        targets={"balanced_accuracy": 0.80, "macro_auc": 0.90, "wall_s": 600}),
}
for strategy in ("none", "weighted", "focal", "balanced_sampler"):
    # The imbalance table: same recipe, fewer fine-tune epochs so the four runs fit in an hour.
    CASES[f"ham10000_imbalance_{strategy}"] = dict(
        data="ham10000", cfg=dict(HAM, finetune_epochs=3, imbalance=(strategy,)),
        targets={"balanced_accuracy": 0.75})


def run(case: str) -> None:
    spec = CASES[case]
    t0 = time.perf_counter()
    ds = open_dataset(spec["data"])
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    cfg = TrainConfig.from_dict(spec["cfg"])
    res = train(ds, splits, cfg, OUT / case / "run")
    wall = time.perf_counter() - t0
    t = res.test or {}
    metrics = {k: t.get(k) for k in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1", "weighted_f1",
                                      "medmnist_acc", "per_class_recall", "worst_classes")}
    metrics = {k: v for k, v in metrics.items() if v is not None}
    metrics["val_balanced_accuracy"] = res.val["balanced_accuracy"]
    metrics["wall_s"] = round(wall, 1)
    baseline = {"name": "majority class", "metrics": {"accuracy": t.get("majority_baseline_accuracy"),
                                                      "balanced_accuracy": 1.0 / len(ds.class_counts())}}
    print(write_result(case, spec["data"], wall, metrics, spec["targets"], baseline,
                       notes=f"config: {cfg.to_dict()}; split strategy {splits.strategy}"))


if __name__ == "__main__":
    for c in sys.argv[1:] or ["pneumoniamnist"]:
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r}; known: {', '.join(CASES)}")
        run(c)
