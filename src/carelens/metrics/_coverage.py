"""How prediction sets do on labelled data: coverage (marginal and per class) and set sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["coverage_report"]


def coverage_report(mask: np.ndarray, y: np.ndarray, class_ids: Sequence[str]) -> dict[str, Any]:
    """Marginal and per-class coverage, mean set size and the set-size histogram."""
    y = np.asarray(y, dtype=np.int64)
    hit = mask[np.arange(len(y)), y]
    per = {cid: (float(hit[y == i].mean()) if (y == i).any() else float("nan")) for i, cid in enumerate(class_ids)}
    sizes = mask.sum(1)
    valid = [v for v in per.values() if not math.isnan(v)]
    return {
        "coverage": float(hit.mean()),
        "per_class_coverage": per,
        "min_class_coverage": float(min(valid)) if valid else float("nan"),
        "mean_set_size": float(sizes.mean()),
        "set_size_histogram": np.bincount(sizes, minlength=mask.shape[1] + 1)[1:].tolist(),
    }
