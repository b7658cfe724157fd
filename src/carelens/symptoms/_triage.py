"""Combining an image assessment and a symptom assessment into one triage decision.

Sources over the same conditions are fused by log-linear pooling (clinical facts with the image:
:class:`~carelens.symptoms.FactsFusion`). A skin-photo model and a general symptom checker describe
different condition sets, so their distributions cannot be multiplied; the combined assessment keeps
the image finding, takes the more urgent triage level of the two (safety first), flags
``multi_system`` when the reported symptoms belong to other body systems than the image finding, and
``symptom_conflict`` when the two sources are two or more triage levels apart (one says self-care,
the other an urgent visit). A text in which no symptom was recognised leaves the image assessment as
it is and says what was not understood.
"""

from __future__ import annotations

from typing import Any

from carelens.errors import ConfigError, NothingRecognisedError
from carelens.labels import triage_rank
from carelens.policy import Assessment, TriageDecision
from carelens.symptoms._bundle import SymptomBundle, nothing_recognised
from carelens.symptoms._parse import ParsedSymptoms

__all__ = ["combine_assessments", "triage"]

CONFLICT_LEVELS = 2  # image and symptoms this many triage levels apart disagree


def combine_assessments(image: Assessment, symptoms: Assessment, parsed: ParsedSymptoms,
                        bundle: SymptomBundle) -> Assessment:
    flags = list(image.flags)
    image_group = image.top[0].group
    symptom_groups = {bundle.vocab.get(s).group for s in parsed.present} - {"general", "history"}
    if symptom_groups and symptom_groups != {image_group} and "multi_system" not in flags:
        flags.append("multi_system")
    if abs(triage_rank(symptoms.triage.level) - triage_rank(image.triage.level)) >= CONFLICT_LEVELS \
            and "symptom_conflict" not in flags:
        flags.append("symptom_conflict")
    triage = image.triage
    advice = image.advice
    if triage_rank(symptoms.triage.level) > triage_rank(image.triage.level):
        triage = TriageDecision(level=symptoms.triage.level,
                                reason=f"the reported symptoms suggest {symptoms.top[0].name.lower()} "
                                       f"({symptoms.triage.reason})")
        advice = symptoms.advice
    confidence = "possible" if "symptom_conflict" in flags and image.confidence == "likely" else image.confidence
    return image.model_copy(update={"flags": flags, "triage": triage, "advice": advice, "confidence": confidence,
                                    "based_on": [*image.based_on, "symptoms"]})


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
        parsed = symptoms.parser.parse(text)
        if parsed.present:
            sym_a = symptoms.assess_parsed(parsed)
        elif image is None:
            raise NothingRecognisedError(nothing_recognised(parsed))
    combined: Assessment | None = image or sym_a
    if image is not None and sym_a is not None and parsed is not None and symptoms is not None:
        combined = combine_assessments(image, sym_a, parsed, symptoms)
    assert combined is not None
    return {
        "assessment": combined.model_dump(mode="json"),
        "sources": {"image": image.model_dump(mode="json") if image else None,
                    "symptoms": sym_a.model_dump(mode="json") if sym_a else None},
        "symptoms": None if parsed is None else {"present": parsed.present, "absent": parsed.absent,
                                                  "not_understood": parsed.unmapped, "used": sym_a is not None},
    }
