"""Calibration (numpy, scipy and scikit-learn; no torch): temperature scaling, conformal prediction sets and
the out-of-distribution gate.

Each is a fitted estimator (``fit`` returns self, learned state ends in ``_``) that persists as plain data
(``to_dict`` / ``from_dict``). Fitting them on a training run is the calibrate step (:mod:`carelens.steps`).
"""

from carelens.calibrate._conformal import ConformalClassifier, ConformalScore, conformal_quantile, nonconformity
from carelens.calibrate._ood import OODGate, OODMethod
from carelens.calibrate._temperature import TemperatureScaler

__all__ = [
    "ConformalClassifier",
    "ConformalScore",
    "OODGate",
    "OODMethod",
    "TemperatureScaler",
    "conformal_quantile",
    "nonconformity",
]
