"""Combining an image assessment and a symptom assessment into one triage decision.

When the symptom bundle holds a fusion fitted with this image model (same condition ids, weights fitted on
paired validation cases: :class:`~carelens.symptoms.ImageSymptomFusion`), the two distributions are
pooled and the decision is made again on the fused probabilities (``based_on`` gains ``symptoms``); the
fused triage is never less urgent than the image's own, nor than the symptom model's. Otherwise (a
skin-photo model and a general symptom checker describe different condition sets) the combined
assessment keeps the image finding and takes the more urgent triage level of the two. Either way
``multi_system`` is raised when the reported symptoms belong to other body systems than the image finding,
and ``symptom_conflict`` when the two sources disagree (fused: the symptoms overturn a fairly sure image
finding; unfused: they are two or more triage levels apart). A text in which no symptom was recognised
leaves the image assessment as it is and says what was not understood.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from carelens.errors import ConfigError, NothingRecognisedError
from carelens.labels import LabelSpec, triage_rank
from carelens.policy import Assessment, DecisionPolicy, TriageDecision, decide, keep_urgency
from carelens.symptoms._bundle import SymptomBundle, nothing_recognised
from carelens.symptoms._parse import ParsedSymptoms

__all__ = ["combine_assessments", "fuse_assessments", "triage"]

CONFLICT_LEVELS = 2  # image and symptoms this many triage levels apart disagree


def _other_systems(image: Assessment, parsed: ParsedSymptoms, bundle: SymptomBundle) -> bool:
    symptom_groups = {bundle.vocab.get(s).group for s in parsed.present} - {"general", "history"}
    return bool(symptom_groups) and symptom_groups != {image.top[0].group}


def _not_below_symptoms(a: Assessment, symptoms: Assessment) -> Assessment:
    """Safety first: the symptom model's own level (over its own conditions) is never talked down."""
    if triage_rank(symptoms.triage.level) <= triage_rank(a.triage.level):
        return a
    return a.model_copy(update={
        "triage": TriageDecision(level=symptoms.triage.level, reason=f"the reported symptoms suggest "
                                 f"{symptoms.top[0].name.lower()} ({symptoms.triage.reason})"),
        "advice": symptoms.advice})


def combine_assessments(image: Assessment, symptoms: Assessment, parsed: ParsedSymptoms,
                        bundle: SymptomBundle) -> Assessment:
    """Sources over different condition sets: the image finding, the more urgent level of the two."""
    flags = list(image.flags)
    if _other_systems(image, parsed, bundle) and "multi_system" not in flags:
        flags.append("multi_system")
    if abs(triage_rank(symptoms.triage.level) - triage_rank(image.triage.level)) >= CONFLICT_LEVELS \
            and "symptom_conflict" not in flags:
        flags.append("symptom_conflict")
    confidence = "possible" if "symptom_conflict" in flags and image.confidence == "likely" else image.confidence
    a = image.model_copy(update={"flags": flags, "confidence": confidence, "based_on": [*image.based_on, "symptoms"]})
    return _not_below_symptoms(a, symptoms)


def fuse_assessments(image: Assessment, symptoms: Assessment, parsed: ParsedSymptoms, bundle: SymptomBundle,
                     spec: LabelSpec, policy: DecisionPolicy | None = None) -> Assessment | None:
    """Sources over the same conditions, pooled with the weights fitted for this image model; ``None`` when
    the bundle has no fusion for it (or the image assessment carries no full distribution)."""
    fusion = bundle.fusion_for(image.model)
    if fusion is None or not image.probabilities or fusion.image_classes != spec.class_ids:
        return None
    p_img = np.asarray([image.probabilities[c] for c in spec.class_ids])
    fused, mask, disagree = fusion.fuse(p_img / p_img.sum(), bundle.proba(parsed.present))
    extra = tuple(f for f, on in (("symptom_conflict", bool(disagree[0])),
                                  ("multi_system", _other_systems(image, parsed, bundle))) if on)
    set_ = mask[0] | (disagree[0] & np.isin(spec.class_ids, image.prediction_set))  # disagreement widens the set
    a = decide(fused[0], set_, spec=spec, model=image.model, coverage=1 - fusion.alpha,
               in_distribution=image.in_distribution, ood_score=image.ood_score, policy=policy, extra_flags=extra,
               based_on=(*image.based_on, "symptoms"))
    return _not_below_symptoms(keep_urgency(a, image, "the reported symptoms"), symptoms)


def triage(*, image: Assessment | None = None, text: str | None = None, symptoms: SymptomBundle | None = None,
           image_spec: LabelSpec | None = None, policy: DecisionPolicy | None = None) -> dict[str, Any]:
    """One triage result from an image assessment and/or symptom text.

    ``image_spec`` and ``policy``: the image model's label spec and decision settings, needed to decide again
    on fused probabilities when the symptom bundle holds a fusion fitted with that model."""
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
        fused = fuse_assessments(image, sym_a, parsed, symptoms, image_spec, policy) if image_spec else None
        combined = fused or combine_assessments(image, sym_a, parsed, symptoms)
    assert combined is not None
    return {
        "assessment": combined.model_dump(mode="json"),
        "sources": {"image": image.model_dump(mode="json") if image else None,
                    "symptoms": sym_a.model_dump(mode="json") if sym_a else None},
        "symptoms": None if parsed is None else {
            "present": parsed.present, "absent": parsed.absent, "not_understood": parsed.unmapped,
            # what each symptom was read from, so the person can see it and rephrase: words, span, negated, method
            "understood": parsed.matches, "used": sym_a is not None},
    }
