"""Selective prediction: how accuracy rises when the least confident cases are left to a person."""

from __future__ import annotations

import numpy as np

__all__ = ["risk_coverage"]


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction answered (most confident first) and the accuracy on that fraction."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    return n / len(order), hits / n
