"""The template explanation: per confidence tier and species, every sentence from the assessment and the
label spec (names, groups, care provider). Strings are plain module constants, ready for translation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from carelens.labels import LabelSpec
from carelens.policy import Assessment

__all__ = ["Explanation", "explain", "template_explanation"]

SAW = {  # what the model saw, in words that match how sure it is
    "likely": "The {source} most likely shows {name} ({pct}%).",
    "possible": "The {source} possibly shows {name} ({pct}%), but the model is not sure.",
    "uncertain": "The model could not tell reliably what the {source} shows.",
}
OTHERS = "Other conditions that remain possible: {names}."
ONE_SYSTEM = "{group}-related issue detected."
SEVERAL_SYSTEMS = "Multiple systems affected ({groups})."
CHANGE = "If new symptoms appear or {subject} gets worse, get care sooner than this."
OOD = "The photo does not look like the photos the model learned from, so its answer cannot be relied on; retake it in good light, or have a {who} look."
ANIMAL_SUBJECT, HUMAN_SUBJECT = "your pet", "it"


@dataclass(frozen=True)
class Explanation:
    text: str
    by: Literal["template", "llm"]
    guardrail_failures: tuple[str, ...] = ()  # why an LLM answer was replaced (empty when none was asked)


def _source(a: Assessment) -> str:
    if "image" in a.based_on:
        return "photo"
    return "description of the symptoms" if "symptoms" in a.based_on else "information given"


def _grade(severity: str | None) -> str:
    return f" ({severity.replace('_', ' ')})" if severity else ""


def template_explanation(a: Assessment, spec: LabelSpec) -> str:
    """What the model saw, how sure it is, what else is plausible, the body systems, what to do and how soon,
    and what would change the advice; then the disclaimer."""
    who = spec.provider
    parts = []
    if not a.in_distribution:
        parts.append(OOD.format(who=who))
    if a.findings:  # multi-label: every finding, with its severity
        found = [f for f in a.findings if f.present] or a.findings[:1]
        listed = ", ".join(f"{f.name.lower()}{_grade(f.severity)} {round(f.probability * 100)}%" for f in found)
        parts.append(f"The {_source(a)} shows signs of {listed}." if a.confidence != "uncertain"
                     else SAW["uncertain"].format(source=_source(a)))
    else:
        top = a.top[0]
        parts.append(SAW[a.confidence].format(source=_source(a), name=top.name.lower(), pct=round(top.probability * 100)))
    lower = {c.id: c.name.lower() for c in spec.classes}
    others = [lower.get(c, c) for c in a.prediction_set if c != a.top[0].id]
    if others:
        parts.append(OTHERS.format(names=", ".join(others)))
    groups = sorted({spec.get(c).group for c in a.prediction_set if c in lower} or {a.top[0].group})
    parts.append(ONE_SYSTEM.format(group=groups[0].capitalize()) if len(groups) == 1
                 else SEVERAL_SYSTEMS.format(groups=", ".join(groups)))
    parts.append(spec.action(a.triage.level))
    parts.append(CHANGE.format(subject=ANIMAL_SUBJECT if spec.veterinary else HUMAN_SUBJECT))
    parts.append(a.disclaimer)
    return " ".join(parts)


def explain(a: Assessment, spec: LabelSpec) -> Explanation:
    return Explanation(template_explanation(a, spec), "template")
