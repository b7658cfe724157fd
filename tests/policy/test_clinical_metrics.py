"""Clinical decision metrics: safety (critical-miss) is always reported with its price (over-triage)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carelens.errors import LabelSpecError
from carelens.labels import LabelSpec
from carelens.policy import (
    DecisionPolicy,
    ModelRef,
    critical_miss_rate,
    decide,
    level_agreement,
    ood_at_floor,
    over_triage_rate,
    triage_levels,
    triage_levels_by_threshold,
)

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


def test_level_agreement_sees_escalation_the_over_triage_rate_cannot() -> None:
    # own levels: self_care, consultation, consultation_24, consultation_24
    y = np.array([0, 1, 2, 3, 3])
    levels = ["self_care", "consultation_24", "emergency_ambulance", "consultation_24", "consultation"]
    t = level_agreement(levels, y, SPEC)
    # the urgent case sent to an ambulance is no over-triage (its class is urgent), but it is above its own level
    assert over_triage_rate(levels, y, SPEC) == 0.5
    assert t["same_level_rate"] == 2 / 5 and t["above_own_level_rate"] == 2 / 5 and t["below_own_level_rate"] == 1 / 5
    counts = np.asarray(t["counts"])
    assert t["levels"][2] == "consultation_24" and counts[2, 4] == 1 and counts[2, 1] == 1 and counts[1, 2] == 1
    assert counts.sum() == len(y)
    # a critical case below its own level is missed even at an urgent level: a heart attack answered within a day
    cardiac = LabelSpec.model_validate({"name": "c", "classes": [
        {"id": "indigestion", "name": "Indigestion", "severity": "low", "triage": "self_care"},
        {"id": "heart_attack", "name": "Heart attack", "severity": "critical", "triage": "emergency_ambulance"}]})
    given = ["consultation_24", "emergency_ambulance", "self_care"]
    assert critical_miss_rate(given, np.array([1, 1, 0]), cardiac) == 1 / 2
    # a critical class whose own level is below consultation_24 is still missed below consultation_24
    mild = LabelSpec.model_validate({"name": "m", "classes": [
        {"id": "ok", "name": "OK", "severity": "low", "triage": "self_care"},
        {"id": "odd", "name": "Odd", "severity": "high", "triage": "consultation"}]})
    assert critical_miss_rate(["consultation", "consultation_24"], np.array([1, 1]), mild) == 1 / 2
    with pytest.raises(ValueError, match="4 triage levels for 5"):
        level_agreement(levels[:4], y, SPEC)
    assert level_agreement([], np.array([], dtype=int), SPEC)["same_level_rate"] is None  # JSON null, not NaN


def test_escalating_everyone_is_safe_and_useless() -> None:
    y = np.array([0, 1, 2, 3])
    everyone = ["emergency"] * 4
    assert critical_miss_rate(everyone, y, SPEC) == 0.0 and over_triage_rate(everyone, y, SPEC) == 1.0


def test_out_of_distribution_cases_at_the_floor_alone() -> None:
    # the shipped rule keeps an urgent finding's level on an unusual image; at the floor alone, the unusual cancer is
    # missed and the unusual benign case is no longer over-triaged
    y = np.array([3, 0, 3, 0])
    levels = ["consultation_24", "consultation_24", "consultation_24", "self_care"]
    in_distribution = np.array([False, False, True, True])  # the first two look unusual
    floored = ood_at_floor(levels, in_distribution, "consultation")
    assert floored == ["consultation", "consultation", "consultation_24", "self_care"]
    assert critical_miss_rate(levels, y, SPEC) == 0.0 and critical_miss_rate(floored, y, SPEC) == 0.5
    assert over_triage_rate(levels, y, SPEC) == 0.5 and over_triage_rate(floored, y, SPEC) == 0.0
    with pytest.raises(LabelSpecError, match="unknown triage level"):
        ood_at_floor(levels, in_distribution, "soon")
    with pytest.raises(ValueError, match="4 levels but 3"):
        ood_at_floor(levels, in_distribution[:3], "consultation")


def test_triage_levels_follow_the_decision_policy() -> None:
    proba = np.array([[0.85, 0.05, 0.03, 0.07], [0.3, 0.1, 0.1, 0.5]])
    sets = proba > 0.04
    levels = triage_levels(proba, sets, np.array([True, True]), SPEC)
    assert levels == ["consultation_24", "consultation_24"]  # a plausible cancer escalates the first case too
    only_top = np.eye(4, dtype=bool)[proba.argmax(1)]
    assert triage_levels(proba, only_top, np.array([True, True]), SPEC) == ["self_care", "consultation_24"]


def test_measured_levels_are_the_levels_the_assessments_give() -> None:
    """triage_levels skips writing the assessments (thousands of cases per operating point): the level must still
    be the one decide() gives, for every rule, set and OOD verdict."""
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(4, 0.5), size=300)
    sets = rng.random((300, 4)) < 0.4
    in_dist = rng.random(300) < 0.8
    ref = ModelRef(name="t", version="test")
    for policy in (None, DecisionPolicy(critical_threshold=0.2), DecisionPolicy(finding_weights=(0.5, 1, 1, 3))):
        levels = triage_levels(proba, sets, in_dist, SPEC, policy=policy)
        assessed = [decide(p, s, spec=SPEC, model=ref, coverage=0.9, in_distribution=bool(d), policy=policy).triage.level
                    for p, s, d in zip(proba, sets, in_dist, strict=True)]
        assert levels == assessed
        assert len(set(levels)) >= 3  # the cases reach several levels: a real comparison


def test_the_threshold_sweep_gives_the_levels_of_each_threshold_alone() -> None:
    """calibrate sweeps 19 critical-probability thresholds over every validation and test case; the sweep decides
    each case twice instead of 19 times, and must give exactly the levels each threshold gives on its own, the
    cases at a threshold itself included."""
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.full(4, 0.5), size=400)
    thresholds = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
    proba[:12] = [[0.9, 0, 0, 0.1], [0.8, 0.1, 0, 0.1], [0.95, 0, 0, 0.05], [0.7, 0.1, 0, 0.2]] * 3  # exactly at one
    sets = rng.random((400, 4)) < 0.4
    in_dist = rng.random(400) < 0.8
    swept = triage_levels_by_threshold(proba, sets, in_dist, SPEC, thresholds)
    assert list(swept) == list(thresholds)
    for t in thresholds:
        assert swept[t] == triage_levels(proba, sets, in_dist, SPEC, policy=DecisionPolicy(critical_threshold=t)), t
    assert len({tuple(v) for v in swept.values()}) == len(thresholds)  # every threshold decides some case differently
