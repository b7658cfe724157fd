"""Combining an image assessment and a symptom assessment into one triage decision.

When both sources describe the same conditions, their distributions are fused (``LogLinearPooling``).
When they describe different condition sets (a skin-photo model and a general symptom checker), the
combined assessment keeps the image finding, takes the more urgent triage level of the two (safety
first), and flags ``multi_system`` when the reported symptoms belong to other body systems than the
image finding.
"""

from __future__ import annotations

from typing import Any

from carelens.errors import ConfigError
from carelens.labels import triage_rank
from carelens.predict.schema import Assessment, TriageDecision
from carelens.symptoms._bundle import SymptomBundle
from carelens.symptoms._parse import ParsedSymptoms

__all__ = ["combine_assessments", "triage"]


def combine_assessments(image: Assessment, symptoms: Assessment, parsed: ParsedSymptoms,
                        bundle: SymptomBundle) -> Assessment:
    flags = list(image.flags)
    image_group = image.top[0].group
    symptom_groups = {bundle.vocab.get(s).group for s in parsed.present} - {"general", "history"}
    if symptom_groups and symptom_groups != {image_group} and "multi_system" not in flags:
        flags.append("multi_system")
    triage = image.triage
    advice = image.advice
    if triage_rank(symptoms.triage.level) > triage_rank(image.triage.level):
        triage = TriageDecision(level=symptoms.triage.level,
                                reason=f"the reported symptoms suggest {symptoms.top[0].name.lower()} "
                                       f"({symptoms.triage.reason})")
        advice = symptoms.advice
    return image.model_copy(update={"flags": flags, "triage": triage, "advice": advice})


def triage(*, image: Assessment | None = None, text: str | None = None,
           symptoms: SymptomBundle | None = None) -> dict[str, Any]:
    """One triage result from an image assessment and/or symptom text."""
    if image is None and not text:
        raise ConfigError("give an image, a symptom description, or both")
    sym_a: Assessment | None = None
    parsed: ParsedSymptoms | None = None
    if text:
        if symptoms is None:
            raise ConfigError("symptom text needs a symptom bundle (build one with `carelens symptoms build`)")
        sym_a, parsed = symptoms.assess(text)
    if image is not None and sym_a is not None and parsed is not None and symptoms is not None:
        combined = combine_assessments(image, sym_a, parsed, symptoms)
    else:
        combined = image or sym_a
    assert combined is not None
    return {
        "assessment": combined.model_dump(mode="json"),
        "sources": {"image": image.model_dump(mode="json") if image else None,
                    "symptoms": sym_a.model_dump(mode="json") if sym_a else None},
        "symptoms": None if parsed is None else {"present": parsed.present, "absent": parsed.absent,
                                                  "not_understood": parsed.unmapped},
    }
