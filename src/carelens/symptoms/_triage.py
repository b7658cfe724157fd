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

import functools
import re
from typing import Any

import numpy as np

from carelens.errors import ConfigError, NothingRecognisedError
from carelens.labels import DomainSymptom, LabelSpec, triage_rank
from carelens.policy import Assessment, DecisionPolicy, TriageDecision, decide, keep_urgency
from carelens.symptoms._bundle import SymptomBundle, nothing_recognised
from carelens.symptoms._parse import ParsedSymptoms, SymptomParser
from carelens.symptoms._vocabulary import Symptom, Vocabulary

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
    a = decide(fused[0], set_, spec=spec, model=image.model, coverage=1 - fusion.conformal.alpha,
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
    domain: ParsedSymptoms | None = None
    if text and image is not None and image_spec is not None and image_spec.symptoms:
        domain, text = _domain_answers(image_spec, text, symptoms.parser if symptoms is not None else None)
    # text that answered the image's questions needs nothing more when no symptom bundle is loaded or nothing is left
    answered_only = domain is not None and bool(domain.matches) and (symptoms is None or not _has_words(text or ""))
    if text and not answered_only:
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
    answers = None
    if domain is not None and image_spec is not None:
        combined, answers = _checklist(combined, image_spec, domain)
    section = None if parsed is None and answers is None else {
        "present": parsed.present if parsed else [], "absent": parsed.absent if parsed else [],
        "not_understood": parsed.unmapped if parsed else [],
        # what each symptom was read from, so the person can see it and rephrase: words, span, negated, method
        "understood": parsed.matches if parsed else [], "used": sym_a is not None,
        **({"image_questions": answers} if answers is not None else {})}
    return {
        "assessment": combined.model_dump(mode="json"),
        "sources": {"image": image.model_dump(mode="json") if image else None,
                    "symptoms": sym_a.model_dump(mode="json") if sym_a else None},
        "symptoms": section,
    }


def _has_words(text: str) -> bool:
    return bool(re.search(r"[a-z]{3,}", text.lower()))


@functools.lru_cache(maxsize=16)
def _domain_parser(questions: tuple[DomainSymptom, ...]) -> SymptomParser:
    """The parser of an image domain's questions, built once per spec (its phrase patterns are compiled once)."""
    return SymptomParser(Vocabulary([Symptom(q.id, q.name, "domain", 3, q.synonyms) for q in questions]))


def _domain_answers(spec: LabelSpec, text: str, general: SymptomParser | None = None) -> tuple[ParsedSymptoms, str]:
    """The image domain's questions answered in ``text`` (rules only: a handful of questions, which an embedding
    would match to anything), and the text with those words blanked for the general symptom parser, except words
    that name one of its symptoms outright too (``general``'s phrases and synonyms: "itching" answers the lesion's
    question and is a symptom of its own, which the symptom model must hear as well)."""
    found = _domain_parser(spec.symptoms).parse(text)
    rest = list(text)
    for m in found.matches:
        span: list[int] = m["span"]  # type: ignore[assignment]
        words = text[span[0] : span[1]]
        if general is not None and general.names_symptom(words):
            continue
        rest[span[0] : span[1]] = " " * (span[1] - span[0])
    return found, "".join(rest)


def _checklist(a: Assessment, spec: LabelSpec, found: ParsedSymptoms) -> tuple[Assessment, dict[str, Any]]:
    """The answers to the image's questions, their checklist score, and the assessment raised to the checklist's
    level when the score reaches its threshold (never lowered)."""
    answers: dict[str, Any] = {"present": found.present, "absent": found.absent, "understood": found.matches}
    c = spec.checklist
    if c is None:
        return a, answers
    points = {q.id: q.points for q in spec.symptoms}
    score = sum(points[s] for s in found.present)
    answers["checklist"] = {"name": c.name, "score": score, "threshold": c.threshold, "met": score >= c.threshold,
                            "reference": c.reference.strip()}
    if score >= c.threshold and triage_rank(a.triage.level) < triage_rank(c.triage):
        said = ", ".join(q.name for q in spec.symptoms if q.id in found.present)
        a = a.model_copy(update={
            "triage": TriageDecision(level=c.triage, reason=f"what you said about it ({said}) scores {score} on the "
                                     f"{c.name}, at least the {c.threshold} that calls for a prompt check; "
                                     f"{a.triage.reason}"),
            "based_on": [*a.based_on, *(["symptoms"] if "symptoms" not in a.based_on else [])]})
    return a, answers
