from __future__ import annotations

import numpy as np
import pytest

from carelens.metrics import classification_metrics, rate_upper_bound


def test_majority_predictor_is_exposed_by_balanced_accuracy() -> None:
    y = np.array([0] * 90 + [1] * 5 + [2] * 5)
    proba = np.tile([0.8, 0.1, 0.1], (100, 1))
    m = classification_metrics(y, proba, ["nv", "mel", "df"])
    assert m["accuracy"] == pytest.approx(0.9)
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)
    assert m["per_class_recall"] == {"nv": 1.0, "mel": 0.0, "df": 0.0}
    assert m["worst_classes"][0] in ("mel", "df")
    assert m["confusion_matrix"][1] == [5, 0, 0]


def test_binary_adds_medmnist_acc_and_auc() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, np.c_[1 - p1, p1], ["normal", "pneumonia"])
    assert m["medmnist_acc"] == pytest.approx(0.5)
    assert m["macro_auc"] == pytest.approx(0.75)


def test_missing_class_gives_nan_auc_with_warning() -> None:
    y = np.array([0, 0, 1])
    proba = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    with pytest.warns(UserWarning, match="AUROC undefined"):
        m = classification_metrics(y, proba, ["a", "b", "c"])
    assert np.isnan(m["per_class"]["c"]["auc"]) and m["macro_auc"] == pytest.approx(1.0)


def test_a_rate_s_upper_bound_covers_the_true_rate_as_often_as_it_says() -> None:
    """The exact one-sided 95% bound: 0 of 30 allows 0.095 (1 - 0.05^(1/30)), every event allows 1; drawn at a
    true rate of 0.05, the bound falls below it in at most 5% of samples (exact bounds are conservative)."""
    assert rate_upper_bound(0, 30) == pytest.approx(1 - 0.05 ** (1 / 30))
    assert rate_upper_bound(5, 5) == 1.0 and np.isnan(rate_upper_bound(0, 0))
    assert rate_upper_bound(1, 30) > rate_upper_bound(0, 30) > rate_upper_bound(0, 300)
    rng = np.random.default_rng(0)
    misses = rng.binomial(40, 0.05, 4000)
    assert np.mean([rate_upper_bound(int(k), 40) < 0.05 for k in misses]) <= 0.05
    with pytest.raises(ValueError, match="events <= n"):
        rate_upper_bound(3, 2)
