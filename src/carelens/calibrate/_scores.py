"""Calibration measures: ECE, MCE, Brier score, NLL and reliability-diagram data (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from carelens.errors import ConfigError

__all__ = ["calibration_report", "check_logits", "expected_calibration_error", "reliability", "softmax"]


def check_logits(logits: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Refuse NaN/inf or wrongly shaped logits with a clear error (never a silent answer)."""
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ConfigError(f"logits must have shape (n, k>=2), got {a.shape}")
    if n_classes is not None and a.shape[1] != n_classes:
        raise ConfigError(f"logits have {a.shape[1]} classes, expected {n_classes}")
    if not np.isfinite(a).all():
        raise ConfigError(f"logits contain {int((~np.isfinite(a)).sum())} NaN or infinite value(s); "
                          "check the input image and the model export")
    return a


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def reliability(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, list[float]]:
    """Per equal-width confidence bin: mean confidence, accuracy and count."""
    conf = proba.max(1)
    correct = (proba.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    out: dict[str, list[float]] = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        m = idx == b
        out["count"].append(int(m.sum()))
        out["confidence"].append(float(conf[m].mean()) if m.any() else float("nan"))
        out["accuracy"].append(float(correct[m].mean()) if m.any() else float("nan"))
    return out


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> tuple[float, float]:
    """(ECE, MCE) with equal-width bins on the top-class confidence (Guo et al. 2017)."""
    r = reliability(proba, y, n_bins)
    n = len(y)
    ece, mce = 0.0, 0.0
    for c, a, k in zip(r["confidence"], r["accuracy"], r["count"], strict=True):
        if k:
            gap = abs(a - c)
            ece += k / n * gap
            mce = max(mce, gap)
    return float(ece), float(mce)


def calibration_report(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    y = np.asarray(y, dtype=np.int64)
    ece, mce = expected_calibration_error(proba, y, n_bins)
    onehot = np.eye(proba.shape[1])[y]
    return {
        "ece": ece,
        "mce": mce,
        "brier": float(((proba - onehot) ** 2).sum(1).mean()),
        "nll": float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean()),
        "reliability": reliability(proba, y, n_bins),
    }
