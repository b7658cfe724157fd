from __future__ import annotations

import numpy as np
import pytest

from carelens.errors import ConfigError
from carelens.labels import load_spec, spec_from_labels
from carelens.policy import DecisionPolicy, ModelRef, decide

HAM = load_spec("ham10000")
REF = ModelRef(name="derma", version="test")
IDS = HAM.class_ids


def _p(**kw: float) -> np.ndarray:
    p = np.full(len(IDS), 0.0)
    for k, v in kw.items():
        p[IDS.index(k)] = v
    rest = 1 - p.sum()
    zero = p == 0
    p[zero] = rest / zero.sum()
    return p


def _mask(*ids: str) -> np.ndarray:
    m = np.zeros(len(IDS), bool)
    for i in ids:
        m[IDS.index(i)] = True
    return m


def test_ambiguous_case_with_a_critical_class_escalates() -> None:
    a = decide(_p(nv=0.45, mel=0.40), _mask("nv", "mel"), spec=HAM, model=REF, coverage=0.9)
    assert a.top[0].id == "nv" and a.prediction_set == ["nv", "mel"]
    assert "ambiguous" in a.flags
    assert a.triage.level == "consultation_24"  # nv alone would be self care
    assert "Melanoma" in a.triage.reason and "plausible" in a.triage.reason
    assert a.confidence == "possible"


def test_confident_benign_case_is_self_care() -> None:
    a = decide(_p(nv=0.93), _mask("nv"), spec=HAM, model=REF, coverage=0.9)
    assert a.confidence == "likely" and a.triage.level == "self_care" and a.flags == []
    assert len(a.top) == 3 and a.disclaimer.startswith("Not a diagnosis")


def test_out_of_distribution_is_never_below_consultation() -> None:
    a = decide(_p(nv=0.95), _mask("nv"), spec=HAM, model=REF, coverage=0.9, in_distribution=False, ood_score=0.001)
    assert a.confidence == "uncertain" and "out_of_distribution" in a.flags
    assert a.triage.level == "consultation" and "does not look like" in a.advice
    assert a.triage.reason.startswith("cannot assess this image") and "Retake the photo" in a.advice
    assert "ruled out" not in a.triage.reason and "do not wait" not in a.advice  # at the floor: nothing kept
    # an urgent-looking finding on an unusual image keeps its level (never lowered), with the same message, and says
    # why: the finding it cannot rule out, whose own advice follows the retake instruction
    b = decide(_p(mel=0.9), _mask("mel"), spec=HAM, model=REF, coverage=0.9, in_distribution=False, ood_score=0.001)
    assert b.triage.level == "consultation_24" and b.triage.reason.startswith("cannot assess this image")
    assert "melanoma cannot be ruled out" in b.triage.reason and "Retake the photo" in b.advice
    assert HAM.classes[HAM.class_ids.index("mel")].advice in b.advice and "do not wait" in b.advice


def test_uncertain_is_escalated_to_the_floor() -> None:
    a = decide(_p(nv=0.30, bkl=0.28), _mask("nv"), spec=HAM, model=REF, coverage=0.9)
    assert a.confidence == "uncertain" and a.triage.level == "consultation"


def test_a_set_of_every_class_is_uncertain_not_possible() -> None:
    # three classes, all in the plausible set at about a third each: nothing is ruled out, so nothing is "possible"
    busi = load_spec("busi")
    p, every = np.array([0.34, 0.33, 0.33]), np.ones(3, bool)
    a = decide(p, every, spec=busi, model=REF, coverage=0.9)
    assert a.confidence == "uncertain" and "ambiguous" in a.flags
    b = decide(p, np.array([True, True, False]), spec=busi, model=REF, coverage=0.9)
    assert b.confidence == "possible"  # a set of two of three leaves one out


def test_a_class_without_advice_gets_its_level_s_action_never_an_empty_one() -> None:
    plain = spec_from_labels("scans", ["benign", "malignant", "normal"])  # every class without advice
    a = decide(np.array([0.1, 0.8, 0.1]), np.array([False, True, False]), spec=plain, model=REF, coverage=0.9)
    assert a.confidence == "likely" and a.advice == "Book a visit with a doctor in the next few days."
    u = decide(np.array([0.34, 0.33, 0.33]), np.ones(3, bool), spec=plain, model=REF, coverage=0.9,
               policy=DecisionPolicy(floor_when_unsure="consultation_24"))
    assert u.confidence == "uncertain" and u.triage.level == "consultation_24"
    assert u.advice.endswith("Have a professional look. See a doctor within 24 hours.")  # the floor's, not the class's
    vet = plain.model_copy(update={"species": ("dog",)})
    assert decide(np.array([0.1, 0.8, 0.1]), np.array([False, True, False]), spec=vet, model=REF,
                  coverage=0.9).advice == "Book a visit with a veterinarian in the next few days."


def test_multi_system_flag() -> None:
    vet = load_spec("vet_dog_cat")
    p = np.full(len(vet.classes), 0.01)
    p[vet.index("otitis")], p[vet.index("allergic_dermatitis")] = 0.5, 0.5 - 0.01 * (len(p) - 2) + 0.01 * 0
    p = p / p.sum()
    m = np.zeros(len(p), bool)
    m[[vet.index("otitis"), vet.index("allergic_dermatitis")]] = True
    a = decide(p, m, spec=vet, model=REF, coverage=0.9)
    assert "multi_system" in a.flags


def test_bad_probabilities_are_refused() -> None:
    with pytest.raises(ConfigError, match="summing to 1"):
        decide(np.full(len(IDS), 0.5), _mask("nv"), spec=HAM, model=REF, coverage=0.9)
    with pytest.raises(ConfigError):
        DecisionPolicy(likely=0.4, possible=0.6)


def test_clinical_facts_may_raise_the_level_but_never_lower_it() -> None:
    from carelens.policy import decide_with_facts

    kw = dict(spec=HAM, model=REF, coverage=0.9)
    # the image keeps melanoma plausible; the facts talk it out of the fused set: the image's level stands
    a = decide_with_facts(_p(nv=0.55, mel=0.35), _mask("nv", "mel"), _p(nv=0.9), _mask("nv"), conflict=False, **kw)
    assert a.triage.level == "consultation_24" and "do not lower" in a.triage.reason
    assert a.prediction_set == ["nv", "mel"] and a.based_on == ["image", "facts"] and a.top[0].probability == 0.9
    # the facts bring melanoma in: the more urgent fused level is taken
    b = decide_with_facts(_p(nv=0.9), _mask("nv"), _p(nv=0.5, mel=0.4), _mask("nv", "mel"), conflict=False, **kw)
    assert b.triage.level == "consultation_24" and "do not lower" not in b.triage.reason
    # a confident image finding overturned by the facts: flagged, never "likely"
    c = decide_with_facts(_p(mel=0.6), _mask("mel"), _p(bkl=0.8), _mask("bkl", "mel"), conflict=True, **kw)
    assert "symptom_conflict" in c.flags and c.confidence != "likely" and c.triage.level == "consultation_24"


def test_critical_probability_rule_escalates_on_summed_critical_probability() -> None:
    crit = [IDS[i] for i in HAM.critical_indices]
    assert {"mel", "bcc"} <= set(crit) and "nv" not in crit
    pol = DecisionPolicy(critical_threshold=0.3)
    # melanoma is in the set but the serious classes together are under 0.3: the set rule escalates, this one not
    p = _p(nv=0.78, mel=0.12, bkl=0.06)
    set_rule = decide(p, _mask("nv", "mel"), spec=HAM, model=REF, coverage=0.9)
    prob_rule = decide(p, _mask("nv", "mel"), spec=HAM, model=REF, coverage=0.9, policy=pol)
    assert set_rule.triage.level == "consultation_24" and prob_rule.triage.level == "self_care"
    assert "under the 30%" in prob_rule.triage.reason and prob_rule.prediction_set == ["nv", "mel"]
    # the serious classes together reach the threshold although none is in the set: escalated
    q = _p(nv=0.6, mel=0.15, bcc=0.15)
    assert decide(q, _mask("nv"), spec=HAM, model=REF, coverage=0.9).triage.level == "self_care"
    esc = decide(q, _mask("nv"), spec=HAM, model=REF, coverage=0.9, policy=pol)
    assert esc.triage.level == "consultation_24" and "at least the 30%" in esc.triage.reason
    # the reason adds up: each serious condition behind the sum is named with its share, the set's members or not
    r = _p(nv=0.6, mel=0.15, bcc=0.12, akiec=0.06)
    why = decide(r, _mask("nv"), spec=HAM, model=REF, coverage=0.9, policy=pol).triage.reason
    assert "serious condition is 33% (melanoma 15%, basal cell carcinoma 12%, actinic keratosis" in why
    assert why.index("melanoma 15%") < why.index("basal cell carcinoma 12%") < why.index("carcinoma 6%")
    assert "nevus" not in why
    # out of distribution keeps its floor either way
    ood = decide(p, _mask("nv"), spec=HAM, model=REF, coverage=0.9, policy=pol, in_distribution=False)
    assert ood.triage.level == "consultation" and ood.confidence == "uncertain"
    with pytest.raises(ConfigError, match="critical_threshold"):
        DecisionPolicy(critical_threshold=1.5)


def test_the_probability_rule_escalates_to_a_plausible_serious_condition_not_the_most_urgent_one() -> None:
    """Serious classes of different urgency (a pet's skin mass: within a day; respiratory distress: emergency): a
    likely skin mass escalates to the skin mass's level, not to the emergency of a 0.2% respiratory distress (the
    rule once took the most urgent serious class at any probability, so that a cough read by the symptom model went to
    an ambulance for a heart attack at 0.1%)."""
    vet = load_spec("vet_dog_cat")
    ids = vet.class_ids
    crit = {ids[i]: vet.classes[i].triage for i in vet.critical_indices}
    assert crit["skin_mass"] == "consultation_24" and crit["respiratory_distress"] == "emergency"

    def p(**kw: float) -> np.ndarray:
        out = np.zeros(len(ids))
        for k, v in kw.items():
            out[ids.index(k)] = v
        out[ids.index("healthy_skin")] = 1 - out.sum()
        return out

    def mask(*names: str) -> np.ndarray:
        return np.isin(ids, names)

    pol, kw = DecisionPolicy(critical_threshold=0.2), {"spec": vet, "model": REF, "coverage": 0.9}
    q = p(allergic_dermatitis=0.5, skin_mass=0.3, respiratory_distress=0.002)
    a = decide(q, mask("allergic_dermatitis"), policy=pol, **kw)
    assert a.triage.level == "consultation_24" and a.advice == vet.classes[ids.index("skin_mass")].advice
    # the emergency is kept where it is plausible (in the set), as the set rule keeps it
    b = decide(q, mask("allergic_dermatitis", "respiratory_distress"), policy=pol, **kw)
    assert b.triage.level == "emergency"
    # a serious class triaged below urgent care (a spec may say so) still escalates to urgent care at least
    low = spec_from_labels("lesions", ["benign", "serious"])
    serious = low.classes[1].model_copy(update={"severity": "high", "triage": "consultation"})
    low = low.model_copy(update={"classes": [low.classes[0], serious]})
    c = decide(np.array([0.7, 0.3]), np.array([True, False]), spec=low, model=REF, coverage=0.9, policy=pol)
    assert c.triage.level == "consultation_24" and c.advice == low.action("consultation_24")


def test_finding_weights_rank_the_findings_and_leave_probabilities_and_triage_alone() -> None:
    p, m = _p(nv=0.50, mel=0.30), _mask("nv", "mel")
    plain = decide(p, m, spec=HAM, model=REF, coverage=0.9)
    w = np.ones(len(IDS))
    w[IDS.index("nv")] = 0.5  # a common class weighed down: 0.50 x 0.5 < 0.30
    weighted = decide(p, m, spec=HAM, model=REF, coverage=0.9, policy=DecisionPolicy(finding_weights=tuple(w)))
    assert [t.id for t in plain.top[:2]] == ["nv", "mel"]
    assert [t.id for t in weighted.top[:2]] == ["mel", "nv"]
    assert weighted.top[0].probability == pytest.approx(0.30)  # the probability shown is still the calibrated one
    assert weighted.probabilities == plain.probabilities and weighted.prediction_set == plain.prediction_set
    assert weighted.triage == plain.triage and weighted.confidence == plain.confidence == "possible"


def test_a_class_called_by_its_weight_is_never_said_to_be_likely() -> None:
    # nv at 0.75 alone in the set would be "likely"; weights that call df (0.08) first must not make df "likely"
    w = np.ones(len(IDS))
    w[IDS.index("df")] = 12.0
    a = decide(_p(nv=0.75, df=0.08), _mask("nv"), spec=HAM, model=REF, coverage=0.9,
               policy=DecisionPolicy(finding_weights=tuple(w)))
    assert a.top[0].id == "df" and a.confidence == "uncertain"
    assert decide(_p(nv=0.75, df=0.08), _mask("nv"), spec=HAM, model=REF, coverage=0.9).confidence == "likely"


@pytest.mark.parametrize("bad", [(1.0, 0.0), (1.0, float("nan")), ()])
def test_bad_finding_weights_are_refused(bad: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match="finding_weights"):
        DecisionPolicy(finding_weights=bad)


def test_finding_weights_must_match_the_classes() -> None:
    with pytest.raises(ConfigError, match="7 classes"):
        decide(_p(nv=0.9), _mask("nv"), spec=HAM, model=REF, coverage=0.9,
               policy=DecisionPolicy(finding_weights=(1.0, 2.0)))
