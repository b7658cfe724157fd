"""The ECE a perfectly calibrated model still shows on a finite test set (issue 16: an ECE target must be read
against it)."""

from __future__ import annotations

import numpy as np

from carelens.metrics import ece_noise_floor, expected_calibration_error, softmax


def test_a_calibrated_model_falls_inside_the_floor_and_an_overconfident_one_above_it() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, (1700, 7))  # about HAM10000's test size and class count
    p = softmax(logits)
    floor = ece_noise_floor(p)
    assert 0.005 < floor["p05"] < floor["mean"] < floor["p95"] < 0.06
    inside = 0
    for _ in range(20):  # labels truly drawn from p: a perfectly calibrated model
        y = (np.cumsum(p, 1) < rng.random((len(p), 1))).sum(1).clip(max=6)
        inside += floor["p05"] <= expected_calibration_error(p, y)[0] <= floor["p95"]
    assert inside >= 14  # about 18 of 20 expected
    y = (np.cumsum(p, 1) < rng.random((len(p), 1))).sum(1).clip(max=6)
    sharp = softmax(logits * 2.0)  # the same ranking, overconfident
    assert expected_calibration_error(sharp, y)[0] > ece_noise_floor(sharp)["p95"] + 0.05
    assert ece_noise_floor(p, seed=3) != floor and abs(ece_noise_floor(p, seed=3)["mean"] - floor["mean"]) < 0.005
