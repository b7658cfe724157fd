"""The decision policy for multi-label models: several findings, each with a severity.

Conditions *present* are those above their decision threshold (chosen on validation); conditions *kept* are
those the conformal risk-control rule keeps (the expected share of present conditions missed is at most
alpha); with the critical-probability rule (``DecisionPolicy.critical_threshold``, chosen on validation to meet
the critical-miss target), a condition that can need urgent care counts from that probability on, neither present
nor kept. Safety first: the triage level is the most urgent (condition, plausible severity) among the kept,
present and escalating conditions, where a grade is plausible when it is the most likely one or its probability reaches
``DecisionPolicy.severity_floor`` (a 30% chance of proliferative retinopathy is not set aside for a 70% chance of
moderate); uncertain or out-of-distribution input is never below the floor, and
out-of-distribution input gets "cannot assess this image, retake it" rather than a level from a set that
has no guarantee there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from carelens.labels import LabelSpec, triage_rank
from carelens.policy._decision import URGENT, DecisionPolicy
from carelens.policy._schema import Assessment, ClassProbability, Finding, ModelRef, TriageDecision

__all__ = ["MultilabelDecision", "decide_multilabel", "multilabel_decision", "required_levels", "triage_grade"]

UNSURE = (0.2, 0.8)  # a calibrated condition probability inside this band is a finding the model is unsure of
Source = Literal["image", "signal"]
# what the input is called, and how to get a better one, in the answers
_INPUT = {"image": ("image", "images", "Retake the photo"),
          "signal": ("recording", "recordings", "Record the ECG again (electrodes firmly on, the patient lying still)")}


@dataclass(frozen=True)
class MultilabelDecision:
    level: str
    reason: str
    advice: str
    confidence: str
    flags: tuple[str, ...]
    considered: tuple[int, ...]  # kept, present or escalating conditions, most probable first
    grades: tuple[int | None, ...]  # per condition, the grade that decides its triage (triage_grade)


def triage_grade(spec: LabelSpec, k: int, dist: np.ndarray | None, floor: float) -> int | None:
    """The grade of condition ``k`` that decides its triage: the most urgent plausible one (the most likely, or
    any at least ``floor`` probable); ties go to the more probable. ``None`` where the condition is not graded."""
    if dist is None:
        return None
    likely = int(np.argmax(dist))
    plausible = [j for j in range(len(dist)) if j == likely or dist[j] >= floor]
    return max(plausible, key=lambda j: (triage_rank(spec.finding_triage(k, j)[0]), dist[j]))


def multilabel_decision(proba: np.ndarray, present: np.ndarray, kept: np.ndarray,
                        severity: Sequence[np.ndarray | None], spec: LabelSpec, *, in_distribution: bool = True,
                        policy: DecisionPolicy | None = None, source: Source = "image") -> MultilabelDecision:
    """The triage decision of one image (or ECG recording, ``source="signal"``): ``proba`` (K,) calibrated,
    ``present``/``kept`` (K,) masks, ``severity`` the severity distribution per condition (``None`` where not
    graded)."""
    pol = policy or DecisionPolicy()
    noun, nouns, retake = _INPUT[source]
    p = np.asarray(proba, dtype=np.float64)
    grades = [triage_grade(spec, k, severity[k], pol.severity_floor) for k in range(len(p))]
    # the critical-probability rule: a condition that can need urgent care is not set aside at this probability
    t = pol.critical_threshold
    escalating = {k for k in range(len(p)) if t is not None and p[k] >= t and not (present[k] or kept[k])
                  and triage_rank(spec.finding_triage(k, grades[k])[0]) >= triage_rank(URGENT)}
    considered = tuple(int(k) for k in np.argsort(-p, kind="stable") if present[k] or kept[k] or k in escalating)
    classes = spec.classes
    flags: list[str] = []
    unsure = int(((p > UNSURE[0]) & (p < UNSURE[1])).sum())
    if unsure:
        flags.append("ambiguous")
    if not in_distribution:
        flags.append("out_of_distribution")
    if len({classes[k].group for k in considered}) > 1:
        flags.append("multi_system")
    if not in_distribution or unsure > 2:
        confidence = "uncertain"
    elif unsure == 0 and not escalating and bool((np.asarray(present) == np.asarray(kept)).all()):
        confidence = "likely"
    else:
        confidence = "possible"

    if considered:
        urgent = max(considered, key=lambda k: (triage_rank(spec.finding_triage(k, grades[k])[0]), p[k]))
        level, _ = spec.finding_triage(urgent, grades[urgent])
        c = classes[urgent]
        sev = grades[urgent]
        dist = severity[urgent]
        likely = dist is not None and sev == int(np.argmax(dist))
        grade = (f" ({'' if likely else 'possibly '}{c.severity_levels[sev].name or c.severity_levels[sev].id})"
                 if sev is not None else "")
        named = f"{c.name}{grade}"
        if urgent in escalating:
            reason = (f"{named} is {p[urgent]:.0%} probable, at least the {t:.0%} chosen to keep missed serious cases "
                      "rare")
        else:
            reason = f"{named} is {'a finding' if present[urgent] else 'kept as possible'}"
        own = (c.severity_levels[sev].advice if sev is not None and c.severity_levels[sev].advice else "") or c.advice
        advice = own or spec.action(level)  # a condition without advice of its own: its level's action
    else:
        named, own = "", ""
        level, reason, advice = "self_care", "no condition is above its threshold or kept as possible", \
            f"No condition was found on this {noun}."
    floor = pol.floor_when_unsure
    if not in_distribution:
        # never below the floor, and never lowered: an urgent finding on an unusual image still escalates (DESIGN.md
        # puts OOD input at the floor itself; measured on multilabel_synth that misses 0.26 of the urgent cases
        # against 0.04, because severe cases look unusual more often)
        escalated = triage_rank(level) > triage_rank(floor)
        found_advice = advice
        level = level if escalated else floor
        reason = f"cannot assess this {noun}: it does not look like the {nouns} this model was trained on"
        advice = (f"This {noun} does not look like what the model was trained on (wrong kind of {noun}, poor quality, "
                  f"or an unusual case). {retake}, or have a professional look.")
        if escalated:  # say why input that cannot be assessed still escalates
            reason += f"; {named.lower()} cannot be ruled out on it, so its urgency is kept"
            advice += f" {named} cannot be ruled out, so do not wait: {found_advice}"
    elif confidence == "uncertain" and triage_rank(level) < triage_rank(floor):
        level = floor
        reason = "the model is not sure about several conditions, so a professional should look"
        advice = "The model could not decide about several conditions. Have a professional look. " + (
            own or spec.action(level))
    return MultilabelDecision(level, reason, advice, confidence, tuple(flags), considered, tuple(grades))


def decide_multilabel(proba: np.ndarray, present: np.ndarray, kept: np.ndarray,
                      severity_proba: Sequence[np.ndarray | None], *, spec: LabelSpec, model: ModelRef,
                      coverage: float, in_distribution: bool = True, ood_score: float = 1.0,
                      policy: DecisionPolicy | None = None, source: Source = "image") -> Assessment:
    """The assessment of one image (or ECG recording) from a multi-label model: every finding with its
    probability and severity distribution; ``prediction_set`` = the conditions kept by conformal risk control."""
    pol = policy or DecisionPolicy()
    p = np.asarray(proba, dtype=np.float64)
    severity = [int(np.argmax(s)) if s is not None else None for s in severity_proba]
    d = multilabel_decision(p, present, kept, severity_proba, spec, in_distribution=in_distribution, policy=pol,
                            source=source)
    classes = spec.classes
    findings = []
    for k in d.considered:
        c, s = classes[k], severity_proba[k]
        dist = {lv.id: round(float(v), 4) for lv, v in zip(c.severity_levels, s, strict=True)} if s is not None else {}
        findings.append(Finding(
            id=c.id, name=c.name, probability=round(float(p[k]), 4), present=bool(present[k]), kept=bool(kept[k]),
            severity=c.severity_levels[severity[k]].id if severity[k] is not None else None,  # type: ignore[index]
            severity_probability=max(dist.values()) if dist else None, severity_distribution=dist,
            triage=spec.finding_triage(k, d.grades[k])[0], group=c.group))
    order = np.argsort(-p, kind="stable")
    top = [ClassProbability(id=classes[k].id, name=classes[k].name, probability=round(float(p[k]), 4),
                            group=classes[k].group, severity=classes[k].severity) for k in order[: pol.top_k]]
    return Assessment(
        model=model, task="multilabel", in_distribution=in_distribution, ood_score=round(float(ood_score), 4),
        top=top, prediction_set=[classes[k].id for k in d.considered if kept[k]], coverage=coverage,
        confidence=d.confidence, flags=list(d.flags),
        triage=TriageDecision(level=d.level, reason=d.reason),
        advice=d.advice, findings=findings, based_on=[source])


def required_levels(y: np.ndarray, spec: LabelSpec) -> list[str]:
    """The triage each labelled image needs: its most urgent true (condition, severity); ``self_care`` for an
    image with no condition. ``y`` is (n, 2K) multi-label targets (:mod:`carelens.tasks`)."""
    k = len(spec.classes)
    out = []
    for row in np.asarray(y):
        levels = [spec.finding_triage(j, int(row[k + j]) if row[k + j] >= 0 else None)[0]
                  for j in range(k) if row[j]]
        out.append(max(levels, key=triage_rank) if levels else "self_care")
    return out
