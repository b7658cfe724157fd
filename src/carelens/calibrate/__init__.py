"""Calibration: temperature scaling, conformal prediction sets, the out-of-distribution gate (numpy only)."""

from carelens.calibrate._conformal import (
    ConformalClassifier,
    conformal_quantile,
    coverage_report,
    nonconformity,
)
from carelens.calibrate._ood import OODGate
from carelens.calibrate._run import Calibration, calibrate_run, critical_miss_rate, load_calibration
from carelens.calibrate._scores import (
    calibration_report,
    check_logits,
    expected_calibration_error,
    reliability,
    softmax,
)
from carelens.calibrate._temperature import TemperatureScaler

__all__ = [
    "Calibration",
    "ConformalClassifier",
    "OODGate",
    "TemperatureScaler",
    "calibrate_run",
    "calibration_report",
    "check_logits",
    "conformal_quantile",
    "coverage_report",
    "critical_miss_rate",
    "expected_calibration_error",
    "load_calibration",
    "nonconformity",
    "reliability",
    "softmax",
]
