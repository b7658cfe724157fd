from __future__ import annotations

import numpy as np
import pytest

from carelens.metrics import classification_metrics


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
