"""Clinical decision metrics: safety (critical-miss) is always reported with its price (over-triage)."""

from __future__ import annotations

import math

import numpy as np

from carelens.labels import LabelSpec
from carelens.policy import critical_miss_rate, over_triage_rate, triage_levels

SPEC = LabelSpec.model_validate({"name": "t", "classes": [
    {"id": "benign", "name": "Benign", "severity": "low", "triage": "self_care"},
    {"id": "watch", "name": "Watch", "severity": "moderate", "triage": "consultation"},
    {"id": "urgent_not_critical", "name": "Urgent", "severity": "moderate", "triage": "consultation_24"},
    {"id": "cancer", "name": "Cancer", "severity": "critical", "triage": "consultation_24"},
]})


def test_rates_count_the_right_cases() -> None:
    y = np.array([0, 0, 1, 2, 3, 3])
    levels = ["consultation_24", "self_care", "consultation_24", "consultation_24", "consultation", "emergency"]
    assert critical_miss_rate(levels, y, SPEC) == 0.5  # one of the two cancers sent below urgent care
    # routine cases are classes 0 and 1 (own triage below consultation_24): two of three were escalated;
    # class 2 triages urgent on its own, so escalating it is no over-triage
    assert over_triage_rate(levels, y, SPEC) == 2 / 3
    assert math.isnan(critical_miss_rate(levels[:3], y[:3], SPEC))  # no critical case: undefined, not 0


def test_escalating_everyone_is_safe_and_useless() -> None:
    y = np.array([0, 1, 2, 3])
    everyone = ["emergency"] * 4
    assert critical_miss_rate(everyone, y, SPEC) == 0.0 and over_triage_rate(everyone, y, SPEC) == 1.0


def test_triage_levels_follow_the_decision_policy() -> None:
    proba = np.array([[0.85, 0.05, 0.03, 0.07], [0.3, 0.1, 0.1, 0.5]])
    sets = proba > 0.04
    levels = triage_levels(proba, sets, np.array([True, True]), SPEC)
    assert levels == ["consultation_24", "consultation_24"]  # a plausible cancer escalates the first case too
    only_top = np.eye(4, dtype=bool)[proba.argmax(1)]
    assert triage_levels(proba, only_top, np.array([True, True]), SPEC) == ["self_care", "consultation_24"]
