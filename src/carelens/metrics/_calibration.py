"""Calibration measures: ECE, MCE, Brier score, NLL and reliability-diagram data."""

from __future__ import annotations

from typing import Any

import numpy as np

from carelens.metrics._probability import nll

__all__ = ["binary_calibration_report", "calibration_report", "ece_noise_floor", "expected_calibration_error",
           "reliability"]


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


def ece_noise_floor(proba: np.ndarray, n_bins: int = 15, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """The ECE a perfectly calibrated model would still show with these probabilities on a test set of this size:
    labels drawn from ``proba`` itself, ``draws`` times (mean and 5th-95th percentiles). A measured ECE inside that
    range cannot be told from perfect calibration by this test set (HAM10000's 1,704 test images: mean 0.022)."""
    p = np.asarray(proba, dtype=np.float64)
    p = p / p.sum(1, keepdims=True)
    rng = np.random.default_rng(seed)
    cum = np.cumsum(p, axis=1)
    eces = []
    for _ in range(draws):
        u = rng.random((len(p), 1))
        y = np.minimum((cum < u).sum(1), p.shape[1] - 1)
        eces.append(expected_calibration_error(p, y, n_bins)[0])
    lo, hi = np.percentile(eces, [5, 95])
    return {"mean": float(np.mean(eces)), "p05": float(lo), "p95": float(hi)}


def calibration_report(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """ECE, MCE, Brier score, NLL and the reliability-diagram data of calibrated probabilities."""
    y = np.asarray(y, dtype=np.int64)
    ece, mce = expected_calibration_error(proba, y, n_bins)
    onehot = np.eye(proba.shape[1])[y]
    return {
        "ece": ece,
        "mce": mce,
        "brier": float(((proba - onehot) ** 2).sum(1).mean()),
        "nll": nll(proba, y),
        "reliability": reliability(proba, y, n_bins),
    }


def binary_calibration_report(proba: np.ndarray, presence: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """:func:`calibration_report` of independent yes/no probabilities (multi-label conditions): every entry of
    ``proba`` against its 0/1 ``presence``, pooled (pass one column for one condition)."""
    p = np.asarray(proba, dtype=np.float64).ravel()
    return calibration_report(np.stack([1 - p, p], axis=1), np.asarray(presence).ravel().astype(np.int64), n_bins)
