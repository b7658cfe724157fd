"""A signal bundle as the ECG screen's beat classifier: the record's beats cut as the bundle was trained
(:func:`carelens.ecg.beat_features`), classified, counted per class and per hour."""

from __future__ import annotations

import numpy as np

from carelens.bundle import SignalBundle
from carelens.ecg import BeatClassifier, BeatSummary, beat_features

__all__ = ["beat_classifier"]


def beat_classifier(bundle: SignalBundle) -> BeatClassifier:
    ids = bundle.spec.class_ids

    def classify(x: np.ndarray, fs: float, peaks: np.ndarray) -> BeatSummary:
        waves, rr, _ = beat_features(x, fs, peaks)
        hours = len(x) / fs / 3600
        if not len(waves):
            zero = dict.fromkeys(ids, 0)
            return BeatSummary(model=f"{bundle.name} {bundle.version}", counts=zero, share=dict.fromkeys(ids, 0.0),
                               per_hour=dict.fromkeys(ids, 0.0), uncertain_share=0.0, out_of_distribution_share=0.0)
        proba, in_set, ind = bundle.classify(waves, rr)
        top = proba.argmax(1)
        counts = {c: int((top == i).sum()) for i, c in enumerate(ids)}
        return BeatSummary(
            model=f"{bundle.name} {bundle.version}", counts=counts,
            share={c: round(n / len(top), 4) for c, n in counts.items()},
            per_hour={c: round(n / hours, 1) for c, n in counts.items()},
            uncertain_share=round(float((in_set.sum(1) > 1).mean()), 4),
            out_of_distribution_share=round(float((~ind).mean()), 4))

    return classify
