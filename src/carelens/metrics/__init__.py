"""Measures every stage shares (numpy; no torch): probabilities and log loss, classification metrics,
calibration, prediction-set coverage and selective accuracy. Clinical decision metrics (critical-miss and
over-triage rates) need the decision policy and live in :mod:`carelens.policy`."""

from carelens.metrics._calibration import (
    binary_calibration_report,
    calibration_report,
    ece_noise_floor,
    expected_calibration_error,
    reliability,
)
from carelens.metrics._classification import (
    balanced_accuracy,
    classification_metrics,
    decisions,
    macro_auc,
    rate_upper_bound,
)
from carelens.metrics._coverage import coverage_report
from carelens.metrics._multilabel import fnr, multilabel_metrics, severity_metrics
from carelens.metrics._probability import nll, softmax
from carelens.metrics._selective import risk_coverage

__all__ = [
    "balanced_accuracy",
    "binary_calibration_report",
    "calibration_report",
    "classification_metrics",
    "coverage_report",
    "decisions",
    "ece_noise_floor",
    "expected_calibration_error",
    "fnr",
    "macro_auc",
    "multilabel_metrics",
    "nll",
    "rate_upper_bound",
    "reliability",
    "risk_coverage",
    "severity_metrics",
    "softmax",
]
