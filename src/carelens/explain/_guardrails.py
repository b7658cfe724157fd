"""Checks every language-model answer must pass before a person sees it; any failure means the template answer
is shown instead. The model cannot name a condition outside the plausible set, state a lower urgency than
carelens's triage level, drop the disclaimer, or run long."""

from __future__ import annotations

import re
from dataclasses import dataclass

from carelens.labels import LabelSpec, triage_rank
from carelens.policy import Assessment

__all__ = ["DOWNPLAY", "TIMEFRAME", "GuardrailResult", "check_answer"]

# phrases that say "not urgent": refused whenever carelens says at least `consultation`
DOWNPLAY = ("no need to see", "no need for a", "nothing to worry", "not serious", "not urgent", "can wait",
            "no rush", "harmless", "home care is enough", "just monitor", "no need to worry", "not necessary to see")
# at consultation_24 and above, the answer must say how soon
TIMEFRAME = {
    "consultation_24": ("24 hours", "today", "within a day", "as soon as possible", "urgent"),
    "emergency": ("emergency", "immediately", "right now", "now"),
    "emergency_ambulance": ("emergency services", "ambulance", "call 9", "call 1"),
}
DISCLAIMER_MARKS = ("not a diagnosis",)


@dataclass(frozen=True)
class GuardrailResult:
    ok: bool
    failures: tuple[str, ...]


def _mentions(text: str, phrase: str) -> bool:
    return re.search(r"(?<![a-z])" + re.escape(phrase.lower()) + r"(?![a-z])", text) is not None


def check_answer(answer: str, a: Assessment, spec: LabelSpec, *, max_chars: int = 1200) -> GuardrailResult:
    text = " ".join(answer.lower().split())
    failures: list[str] = []
    if not text:
        failures.append("empty answer")
    if len(answer) > max_chars:
        failures.append(f"longer than {max_chars} characters ({len(answer)})")
    allowed = {*a.prediction_set, a.top[0].id, *(f.id for f in a.findings if f.present or f.kept)}
    for c in spec.classes:
        if c.id not in allowed and (_mentions(text, c.name) or _mentions(text, c.id.replace("_", " "))):
            failures.append(f"names {c.name!r}, which is not in the plausible set")
    level = a.triage.level
    if triage_rank(level) >= triage_rank("consultation"):
        said = [p for p in DOWNPLAY if _mentions(text, p)]
        if said:
            failures.append(f"states a lower urgency than {level} ({said[0]!r})")
    if level in TIMEFRAME and not any(_mentions(text, p) for p in TIMEFRAME[level]):
        failures.append(f"does not say how soon ({level})")
    if not any(m in text for m in DISCLAIMER_MARKS):
        failures.append("drops the disclaimer (not a diagnosis)")
    return GuardrailResult(not failures, tuple(failures))
