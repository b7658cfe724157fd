"""Explanations: the templates per confidence tier and species, and a language model behind guardrails that
is reached over real HTTP (a scripted OpenAI-compatible server) and replaced whenever it is unsafe or slow."""

from __future__ import annotations

import numpy as np
import pytest

from carelens.explain import LlmExplainer, LlmSettings, check_answer, explain
from carelens.labels import load_spec
from carelens.policy import Assessment, ModelRef, decide
from carelens.scenarios import scripted_llm as fake_llm


def _assess(spec_name: str, p: list[float], in_set: list[bool], ood: bool = True) -> Assessment:
    spec = load_spec(spec_name)
    return decide(np.asarray(p), np.asarray(in_set), spec=spec, model=ModelRef(name="m", version="1"), coverage=0.9,
                  in_distribution=ood)


CASES = {  # confidence tier -> (probabilities, set) on the 2-class chest X-ray spec
    "likely": ([0.05, 0.95], [False, True]),
    "possible": ([0.4, 0.6], [True, True]),
}


@pytest.mark.parametrize("tier", ["likely", "possible", "uncertain"])
@pytest.mark.parametrize("species_spec", ["pneumoniamnist", "vet_dog_cat"])
def test_template_for_every_tier_and_species(tier: str, species_spec: str) -> None:
    spec = load_spec(species_spec)
    k = len(spec.classes)
    if tier == "uncertain":
        p, s, ood = [1 / k] * k, [True] * k, False
    elif species_spec == "pneumoniamnist":
        p, s = CASES[tier]
        ood = True
    else:
        p = [0.0] * k
        p[1], p[0] = (0.9, 0.1) if tier == "likely" else (0.55, 0.45)
        s = [i in (0, 1) if tier == "possible" else i == 1 for i in range(k)]
        ood = True
    a = _assess(species_spec, p, s, ood)
    assert a.confidence == tier
    e = explain(a, spec)
    assert e.by == "template" and "Not a diagnosis" in e.text
    assert spec.provider in e.text or a.triage.level == "emergency_ambulance"
    top = a.top[0].name.lower()
    if tier == "likely":
        assert f"most likely shows {top}" in e.text
    elif tier == "possible":
        assert f"possibly shows {top}" in e.text and "Other conditions that remain possible" in e.text
    else:
        assert "could not tell reliably" in e.text and "retake it" in e.text
    assert ("your pet" in e.text) == spec.veterinary
    assert "veterinarian" in e.text if spec.veterinary else "doctor" in e.text
    assert ("issue detected" in e.text) or ("Multiple systems affected" in e.text)
    assert check_answer(e.text, a, spec).ok, check_answer(e.text, a, spec).failures  # templates pass the guardrails


def test_llm_answers_pass_or_are_replaced() -> None:
    spec = load_spec("pneumoniamnist")
    a = _assess("pneumoniamnist", [0.2, 0.8], [False, True])
    assert a.triage.level == "consultation_24"
    with fake_llm() as llm:
        ex = LlmExplainer(LlmSettings(url=llm.url, model="test-model", api_key="k", timeout_s=1.0))
        good = "The X-ray looks like pneumonia. Please see a doctor within 24 hours. This is not a diagnosis."
        llm.answer(good)
        e = ex.explain(a, spec, "my child has a cough")
        assert e.by == "llm" and e.text == good
        sent = llm.requests[-1]
        assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k"
        assert sent["body"]["model"] == "test-model" and "my child has a cough" in sent["body"]["messages"][1]["content"]
        assert "within 24 hours" in sent["body"]["messages"][0]["content"]  # told the fixed urgency
        llm.answer("It is probably nothing, no need to see a doctor, it can wait. This is not a diagnosis.")
        e = ex.explain(a, spec)
        assert e.by == "template" and any("lower urgency" in f for f in e.guardrail_failures)
        llm.answer("Pneumonia is likely. See a doctor within 24 hours.")  # disclaimer dropped
        e = ex.explain(a, spec)
        assert e.by == "template" and any("disclaimer" in f for f in e.guardrail_failures)
        llm.answer("x" * 2000 + " within 24 hours. This is not a diagnosis.")
        assert ex.explain(a, spec).by == "template"
        llm.answer(good, delay=2.0)  # slower than the 1 s timeout
        e = ex.explain(a, spec)
        assert e.by == "template" and "language model failed" in e.guardrail_failures[0]
        assert ex.counts == {"llm": 1, "guardrail_fallback": 3, "error_fallback": 1}


def test_llm_may_not_name_a_condition_outside_the_plausible_set() -> None:
    spec = load_spec("ham10000")
    k = len(spec.classes)
    p = np.full(k, 0.01)
    p[spec.index("nv")] = 1 - 0.01 * (k - 1)
    a = _assess("ham10000", p.tolist(), [c == "nv" for c in spec.class_ids])
    verdict = check_answer("This looks like melanoma. Book a visit with a doctor. This is not a diagnosis.", a, spec)
    assert not verdict.ok and "Melanoma" in verdict.failures[0]
    assert check_answer("This looks like a mole (melanocytic nevus). Book a visit in the next few days. "
                        "This is not a diagnosis.", a, spec).ok
