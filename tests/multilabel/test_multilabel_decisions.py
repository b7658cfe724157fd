"""Multi-label calibration and decisions: risk control of the false-negative rate, thresholds, the ordinal
decode, and the safety-first triage over findings with severity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carelens.calibrate import MultilabelCalibrator, risk_control_threshold
from carelens.errors import ConfigError
from carelens.labels import load_spec
from carelens.metrics import fnr
from carelens.policy import (
    CRITICAL_THRESHOLDS,
    DecisionPolicy,
    ModelRef,
    choose_rule_by_levels,
    critical_miss_rate,
    decide_multilabel,
    over_triage_rate,
    required_levels,
    rule_bound_text,
)
from carelens.tasks import OutputLayout, encode_findings


def _scores(rng: np.random.Generator, n: int, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random((n, k)) < 0.25).astype(int)
    z = (2 * y - 1) * 1.2 + rng.normal(0, 1.5, (n, k))
    return z, y


def test_risk_control_bounds_the_false_negative_rate_on_new_data() -> None:
    """Over many calibration/test draws, the mean test FNR stays at or below alpha (the guarantee is in
    expectation) and close to it (the rule is not needlessly conservative)."""
    rng = np.random.default_rng(0)
    achieved = []
    for _ in range(60):
        z, y = _scores(rng, 600)
        cal = MultilabelCalibrator(alpha=0.1).fit(z[:300], y[:300])
        achieved.append(fnr(cal.kept(cal.predict_proba(z[300:])), y[300:]))
    assert np.mean(achieved) <= 0.1 + 0.01
    assert np.mean(achieved) >= 0.1 - 0.03


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([0.05, 0.1, 0.2]))
def test_risk_control_threshold_meets_its_inequality(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random((80, 5))
    y = (rng.random((80, 5)) < 0.3).astype(int)
    t = risk_control_threshold(p, y, alpha)
    n = len(p)
    assert (n * fnr(p >= t, y) + 1) / (n + 1) <= alpha or t == 0.0
    above = p[y == 1][p[y == 1] > t]
    if len(above):  # the next higher candidate would break it: t is the largest that works
        nxt = above.min()
        assert (n * fnr(p >= nxt, y) + 1) / (n + 1) > alpha


def test_calibrator_thresholds_and_persistence() -> None:
    rng = np.random.default_rng(1)
    z, y = _scores(rng, 500)
    cal = MultilabelCalibrator(alpha=0.1, recall_floor={0: 0.95}).fit(z, y)
    p = cal.predict_proba(z)
    recall0 = (cal.present(p)[:, 0] & (y[:, 0] == 1)).sum() / y[:, 0].sum()
    assert recall0 >= 0.95
    back = MultilabelCalibrator.from_dict(cal.to_dict())
    assert np.array_equal(back.present(p), cal.present(p)) and np.array_equal(back.kept(p), cal.kept(p))
    assert 0.3 < cal.temperatures_.min() and cal.temperatures_.max() < 3


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-8, 8), min_size=3, max_size=3))
def test_ordinal_decode_is_a_distribution(steps: list[float]) -> None:
    layout = OutputLayout((4, 0), "ordinal")
    logits = np.asarray([[0.0, 0.0, *steps]])
    dist = layout.severity_proba(logits)[0]
    assert dist is not None and layout.severity_proba(logits)[1] is None
    assert np.all(dist >= -1e-12) and abs(dist.sum() - 1) < 1e-9


def _assess(spec, proba, present, kept, sev, ood=True):  # type: ignore[no-untyped-def]
    return decide_multilabel(np.asarray(proba), np.asarray(present), np.asarray(kept), sev, spec=spec,
                             model=ModelRef(name="m", version="1"), coverage=0.9, in_distribution=ood)


def test_triage_is_the_most_urgent_kept_finding_with_its_severity() -> None:
    spec = load_spec("skin_conditions")
    k = len(spec.classes)
    r, a = spec.index("redness"), spec.index("acne")
    proba = np.full(k, 0.02)
    proba[a], proba[r] = 0.97, 0.4
    present = proba > 0.5
    kept = proba > 0.3
    sev: list[np.ndarray | None] = [np.asarray([0.8, 0.15, 0.05])] * k
    sev[r] = np.asarray([0.1, 0.2, 0.7])  # severe redness: consultation_24 in the spec
    out = _assess(spec, proba, present, kept, sev)
    assert out.task == "multilabel" and out.triage.level == "consultation_24"
    assert "Redness (severe)" in out.triage.reason and out.prediction_set == ["acne", "redness"]
    f = {x.id: x for x in out.findings}
    assert f["acne"].present and f["acne"].severity == "mild" and not f["redness"].present and f["redness"].kept
    assert abs(sum(f["redness"].severity_distribution.values()) - 1) < 1e-3
    sev[r] = np.asarray([0.7, 0.2, 0.1])  # mild redness, severe unlikely: routine
    assert _assess(spec, proba, present, kept, sev).triage.level == "self_care"
    sev[r] = np.asarray([0.6, 0.1, 0.3])  # mild most likely, but a 30% chance of severe: safety first escalates
    out = _assess(spec, proba, present, kept, sev)
    assert out.triage.level == "consultation_24" and "possibly severe" in out.triage.reason
    assert {x.id: x for x in out.findings}["redness"].severity == "mild"  # what is reported stays the most likely
    ood = _assess(spec, proba, present, kept, sev, ood=False)  # an urgent finding on an unusual image still escalates
    assert ood.triage.level == "consultation_24" and "cannot assess" in ood.triage.reason
    assert ood.confidence == "uncertain" and "Retake" in ood.advice
    # and says why: the finding it cannot rule out, and that finding's own advice beside the retake
    assert "possibly severe" in ood.triage.reason and "urgency is kept" in ood.triage.reason
    assert out.advice in ood.advice and "do not wait" in ood.advice
    sev[r] = np.asarray([0.9, 0.05, 0.05])  # routine findings on an unusual image: the floor
    ood = _assess(spec, proba, present, kept, sev, ood=False)
    assert ood.triage.level == "consultation" and "cannot assess" in ood.triage.reason
    assert "urgency is kept" not in ood.triage.reason and "do not wait" not in ood.advice


def test_multilabel_critical_miss_and_over_triage() -> None:
    spec = load_spec("skin_conditions")
    y = np.asarray([encode_findings(spec, {"redness": "severe"}), encode_findings(spec, {"acne": "mild"}),
                    encode_findings(spec, {}), encode_findings(spec, {"redness": "severe", "acne": "severe"})])
    assert required_levels(y, spec) == ["consultation_24", "self_care", "self_care", "consultation_24"]
    decided = ["consultation", "consultation_24", "self_care", "emergency"]
    assert critical_miss_rate(decided, y, spec) == pytest.approx(0.5)
    assert over_triage_rate(decided, y, spec) == pytest.approx(0.5)


def test_a_condition_without_advice_gets_its_level_s_action() -> None:
    spec = load_spec("skin_conditions")
    bare = spec.model_copy(update={"classes": tuple(c.model_copy(update={"advice": "", "severity_levels": ()})
                                                    for c in spec.classes)})
    k = len(bare.classes)
    proba = np.full(k, 0.02)
    proba[bare.index("acne")] = 0.97
    out = _assess(bare, proba, proba > 0.5, proba > 0.3, [None] * k)
    assert out.advice == bare.action(out.triage.level) and out.advice.startswith(("This can usually", "Book a visit"))


def test_the_critical_probability_rule_counts_an_urgent_condition_neither_present_nor_kept() -> None:
    """A 15% myocardial infarction under its decision and risk thresholds: set aside by the set rule, an
    emergency from a critical threshold of 10%, said why; a condition that needs no urgent care (conduction
    disturbance, a routine consultation) is never escalated by the threshold, however probable."""
    spec = load_spec("ptbxl_superclasses")
    k = len(spec.classes)
    mi, cd, norm = spec.index("myocardial_infarction"), spec.index("conduction_disturbance"), spec.index("normal")
    proba = np.full(k, 0.02)
    proba[norm], proba[mi], proba[cd] = 0.9, 0.15, 0.45
    present, kept = proba >= 0.5, proba >= 0.5

    def assess(t: float | None):  # type: ignore[no-untyped-def]
        return decide_multilabel(proba, present, kept, [None] * k, spec=spec, model=ModelRef(name="m", version="1"),
                                 coverage=0.9, policy=DecisionPolicy(critical_threshold=t), source="signal")

    assert assess(None).triage.level == "self_care"
    a = assess(0.1)
    assert a.triage.level == "emergency" and "15% probable, at least the 10%" in a.triage.reason
    f = {x.id: x for x in a.findings}
    assert "myocardial_infarction" in f and not f["myocardial_infarction"].present and not f["myocardial_infarction"].kept
    assert "conduction_disturbance" not in f and a.prediction_set == ["normal"] and a.confidence != "likely"
    assert assess(0.2).triage.level == "self_care"  # 15% under a 20% threshold


def test_the_rule_chooser_meets_the_target_cheapest_else_misses_fewest() -> None:
    spec = load_spec("ptbxl_superclasses")
    y = OutputLayout.of(spec).ungraded_targets(np.eye(len(spec.classes), dtype=int)[[1, 1, 2, 0, 0, 3]])
    # own levels: emergency, emergency, consultation_24, self_care, self_care, consultation
    safe, cheap = ["emergency", "emergency", "consultation_24", "consultation_24", "self_care", "consultation"], \
        ["emergency", "consultation", "consultation_24", "self_care", "self_care", "consultation"]
    levels: dict[float | None, list[str]] = {t: safe if t is not None and t <= 0.05 else cheap
                                             for t in (None, *CRITICAL_THRESHOLDS)}
    rule = choose_rule_by_levels(levels, y, spec, target=0.02)
    assert rule["met_on_val"] and rule["critical_threshold"] == 0.05  # the highest threshold that meets it
    # 0 misses among 3 critical cases allow a miss rate up to 0.63 (exact 95% bound), and the rule says so
    assert rule["val_critical_cases"] == 3 and rule["critical_miss_upper95_val"] == pytest.approx(1 - 0.05 ** (1 / 3))
    assert rule_bound_text(rule) == "3 critical cases chose it: its miss rate is at most 0.632 with 95% confidence"
    by_t = {r["critical_threshold"]: r for r in rule["val"]}
    assert by_t[None]["critical_miss_rate"] == pytest.approx(1 / 3) and by_t[0.05]["over_triage_rate"] == pytest.approx(1 / 3)
    # no rule meets 0.02: the one that misses fewest (1 of 3 at 0.01 and 0.02, 2 of 3 otherwise) ships, the cheaper
    # of the two, and says the target was not met
    worse = ["emergency", "consultation", "consultation"] + safe[3:]
    levels = {t: worse for t in (None, *CRITICAL_THRESHOLDS)}
    levels[0.01] = ["emergency", "emergency", "consultation", "consultation_24", "consultation_24", "consultation"]
    levels[0.02] = ["emergency", "emergency", "consultation"] + safe[3:]
    rule = choose_rule_by_levels(levels, y, spec, target=0.02)
    assert not rule["met_on_val"] and rule["critical_threshold"] == 0.02
    with pytest.raises(ConfigError, match="every threshold"):
        choose_rule_by_levels({None: cheap}, y, spec)
