"""Calibration (numpy, scipy and scikit-learn; no torch): temperature scaling, conformal prediction sets, the
out-of-distribution gate and finding weights (the class a model calls); for multi-label models, per-condition
temperatures and thresholds with conformal risk control of the false-negative rate.

Each is a fitted estimator (``fit`` returns self, learned state ends in ``_``) that persists as plain data
(``to_dict`` / ``from_dict``). Fitting them on a training run is the calibrate step (:mod:`carelens.steps`).
"""

from carelens.calibrate._conformal import ConformalClassifier, ConformalScore, conformal_quantile, nonconformity
from carelens.calibrate._findings import choose_finding_weights, prior_weights
from carelens.calibrate._ood import OODGate, OODMethod, conservative_rank
from carelens.calibrate._risk_control import MultilabelCalibrator, risk_control_threshold
from carelens.calibrate._temperature import SCALERS, ScalerChoice, TemperatureScaler, choose_scaler

__all__ = [
    "SCALERS",
    "ConformalClassifier",
    "ConformalScore",
    "MultilabelCalibrator",
    "OODGate",
    "OODMethod",
    "ScalerChoice",
    "TemperatureScaler",
    "choose_finding_weights",
    "choose_scaler",
    "conformal_quantile",
    "conservative_rank",
    "nonconformity",
    "prior_weights",
    "risk_control_threshold",
]
