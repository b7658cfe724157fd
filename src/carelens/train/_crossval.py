"""K-fold cross-validation for small sets: one training run per fold, the test figures as mean and sd."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carelens.config import TrainConfig
from carelens.data import Dataset, Splits
from carelens.train._trainer import train

__all__ = ["HEADLINE", "cross_validate"]

HEADLINE = {  # the figures summarised over folds, per task
    "multiclass": ("balanced_accuracy", "accuracy", "macro_auc", "macro_f1"),
    "multilabel": ("macro_f1", "micro_f1", "macro_auc", "subset_accuracy", "hamming_loss", "severity_qwk"),
}


def _figure(m: dict[str, Any], key: str) -> float:
    v = m["severity"].get("qwk") if key == "severity_qwk" else m.get(key)
    return float("nan") if v is None else float(v)


def cross_validate(ds: Dataset, folds: Sequence[Splits], config: TrainConfig, out: str | Path) -> dict[str, Any]:
    """Train one run per fold into ``out/fold_<i>`` (each fold's test split read once, at its end); write and
    return ``out/crossval.json``: per-fold test figures and their mean and sample standard deviation."""
    root = Path(out)
    task = "multilabel" if ds.multilabel else "multiclass"
    per_fold: list[dict[str, float]] = []
    for n, splits in enumerate(folds, start=1):
        res = train(ds, splits, config, root / f"fold_{n}")
        per_fold.append({k: _figure(res.test or {}, k) for k in HEADLINE[task]})
    summary = {}
    for k in HEADLINE[task]:
        v = np.asarray([f[k] for f in per_fold])
        summary[k] = {"mean": float(np.nanmean(v)), "sd": float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0}
    doc = {"folds": len(folds), "task": task, "strategy": folds[0].strategy.rsplit("_fold", 1)[0],
           "per_fold": per_fold, "summary": summary, "config": config.to_dict()}
    root.mkdir(parents=True, exist_ok=True)
    (root / "crossval.json").write_text(json.dumps(doc, indent=1))
    return doc
