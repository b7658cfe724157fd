"""Rule-based rate and rhythm screening of one ECG lead, with the thresholds cited in ``rhythm_rules.yaml``.

The answer has the same parts as an image assessment: what was found (each rule that fired, with the value
that fired it), how far the signal can be trusted (quality flags), what to do (the most urgent triage level
of the fired rules; an unreadable recording is never ``self_care``), and the disclaimer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from carelens.ecg._io import EcgSignal
from carelens.ecg._quality import signal_quality
from carelens.ecg._rhythm import rhythm
from carelens.ecg._rpeaks import DEFAULT_METHOD, detect_best_lead
from carelens.errors import DataError
from carelens.labels import triage_rank
from carelens.policy import DISCLAIMER, TriageDecision

__all__ = ["VENTRICULAR_BEATS", "BeatClassifier", "BeatSummary", "EcgAssessment", "EcgFinding", "RhythmRules",
           "confirmed_longest_rr", "load_rules", "screen"]

TRUSTED_AGREEMENT = 0.9  # a lead whose two detectors agree this well can show that a gap on another lead is no pause
PAUSE_MARGIN_S = 0.3  # a beat that fills a gap lies at least this far from both of its ends


def confirmed_longest_rr(peaks: np.ndarray, others: list[np.ndarray], fs: float) -> float:
    """The longest RR interval of ``peaks`` (seconds) in which none of the ``others`` (the R-peaks of other leads
    of the same recording) has a beat: a gap that another lead shows beats in is the detector losing beats on this
    lead (noise, an artefact that raised its thresholds), not a pause of the heart."""
    p = np.sort(np.asarray(peaks, np.int64))
    if len(p) < 2:
        return float("nan")
    a, b = p[:-1], p[1:]
    kept = np.ones(len(a), bool)
    margin = int(PAUSE_MARGIN_S * fs)
    for q in others:
        q = np.sort(np.asarray(q, np.int64))
        kept &= np.searchsorted(q, b - margin) - np.searchsorted(q, a + margin, side="right") <= 0
    return float((b - a)[kept].max() / fs) if kept.any() else float(np.median(b - a) / fs)


Level = Literal["self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    # heart_rate_bpm, irregular_share, longest_rr_s; with a beat classifier also <class>_share, <class>_per_hour,
    # <class>_run (beats in its longest run faster than 100/min) and <class>_run_s (that run's seconds)
    measure: str
    below: float | None = None
    above: float | None = None
    triage: Level
    advice: str
    source: str


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    triage: Level
    advice: str


class RhythmRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    title: str
    version: str
    species: list[str]
    normal: Outcome
    unreadable: Outcome
    rules: list[Rule]


@functools.cache
def load_rules() -> RhythmRules:
    """The shipped rules, read once (frozen: safe to share between requests)."""
    text = (resources.files("carelens") / "ecg" / "rhythm_rules.yaml").read_text(encoding="utf-8")
    return RhythmRules.model_validate(yaml.safe_load(text))


class EcgFinding(BaseModel):
    id: str
    name: str
    measure: str
    value: float
    threshold: str = Field(description="the rule, e.g. 'heart_rate_bpm < 50'")
    triage: Level
    source: str


class BeatSummary(BaseModel):
    """What a beat classifier (a signal bundle) made of the record's beats."""

    model: str
    counts: dict[str, int]
    share: dict[str, float]
    per_hour: dict[str, float]
    fast_run: dict[str, int] = Field(
        default_factory=dict, description="per class: beats in its longest run of consecutive beats faster than "
        "100 per minute, counting beats the OOD gate recognises (3 or more ventricular: ventricular tachycardia)")
    fast_run_s: dict[str, float] = Field(default_factory=dict, description="per class: that run's length in seconds")
    uncertain_share: float = Field(description="beats whose conformal set holds more than one class")
    out_of_distribution_share: float = Field(description="beats unlike the training beats (OOD gate)")


# (lead, fs, R-peaks) -> (summary, each R-peak's class id; "" where the beat could not be cut or was not recognised)
BeatClassifier = Callable[[np.ndarray, float, np.ndarray], tuple[BeatSummary, np.ndarray]]
# Beats of ventricular origin (AAMI V and F) in a beat classifier's label spec: the intervals around them are left out
# of the irregularity measure. Supraventricular beats stay in: the classifier tells them mostly by their prematurity,
# which is what every beat of atrial fibrillation looks like (on DS2, leaving them out too lost record 210, 98% in
# atrial fibrillation, whose fibrillation beats were called supraventricular).
VENTRICULAR_BEATS = ("ventricular", "fusion")


class EcgAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["ecg_rhythm"] = "ecg_rhythm"
    rules: str = Field(description="name and version of the screening rules")
    record: str
    lead: str = Field(description="the lead the beats were found on")
    lead_agreement: dict[str, float] = Field(
        default_factory=dict, description="with the lead left to the screen: how well two R-peak detectors agree on "
        "each readable lead (bSQI, 0..1); the best one is read")
    fs: float
    seconds: float
    readable: bool
    quality_flags: list[str]
    detector: str
    beats: int
    heart_rate_bpm: float | None
    rr: dict[str, float | None] = Field(description=(
        "mean_rr_ms, sdnn_ms, rmssd_ms, longest_rr_s, irregular_share (with a beat classifier: without the intervals "
        "around ventricular beats; then also irregular_share_all_beats) ..."))
    findings: list[EcgFinding]
    beats_summary: BeatSummary | None = None
    beats_note: str | None = Field(None, description="why a beat model that was given did not classify the beats")
    triage: TriageDecision
    advice: str
    based_on: list[Literal["signal"]] = ["signal"]
    disclaimer: str = DISCLAIMER


def _clean(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def screen(sig: EcgSignal, lead: str | int | None = None, *, rules: RhythmRules | None = None,
           method: str = DEFAULT_METHOD, classify: BeatClassifier | None = None) -> tuple[EcgAssessment, np.ndarray]:
    """(the screening assessment of one lead, the R-peak sample indices it was measured from).

    ``lead``: the lead to read; by default, of the record's readable leads, the one where two R-peak detectors agree
    most (:func:`carelens.ecg.detect_best_lead`; MLII, else II, else the first on a tie).
    ``classify``: a beat classifier (a signal bundle's, :func:`carelens.predict.beat_classifier`); its beat
    counts feed the rules on ``<class>_share``, ``<class>_per_hour`` and ``<class>_run``, and the irregularity
    measure then leaves out the intervals around beats of ventricular origin (:data:`VENTRICULAR_BEATS`). Without
    one those rules are skipped. It reads the lead it was trained on (MLII's place: the default lead) at the beats
    found on the lead read; a recording it refuses (sampled below its rate) is screened without it
    (``beats_note``)."""
    rules = rules or load_rules()
    default = sig.lead_index(lead)
    candidates = [default] if lead is not None else [default, *(k for k in range(len(sig.leads)) if k != default)]
    quality = {k: signal_quality(sig.samples[:, k], sig.fs) for k in candidates}
    readable_leads = [k for k in candidates if quality[k].readable]
    choice = detect_best_lead(sig.samples, sig.fs, readable_leads, method) if readable_leads else None
    i = choice.index if choice is not None else default
    q = quality[i]
    peaks = choice.peaks if choice is not None else np.zeros(0, np.int64)
    readable = q.readable and len(peaks) >= 3
    summary, labels, beats_note = None, None, None
    if classify is not None and readable:
        try:
            summary, labels = classify(sig.samples[:, sig.lead_index()], sig.fs, peaks)
        except DataError as exc:  # a recording the beat model cannot read: screened without beat classes
            beats_note = f"beats not classified: {exc}"
    # with a beat classifier, irregularity leaves out the intervals around ventricular beats (ectopy is not AF)
    # (a beat whose class is unknown stays in: only a recognised ventricular beat takes evidence away)
    conducted = ~np.isin(labels, VENTRICULAR_BEATS) if labels is not None else None
    r = rhythm(peaks, sig.fs, conducted)
    # a pause must show on every lead that can be trusted, not only on the lead read
    others = [p for k, p in choice.peaks_by_lead.items() if k != i and choice.agreement[k] >= TRUSTED_AGREEMENT] \
        if choice is not None else []
    longest = round(confirmed_longest_rr(peaks, others, sig.fs), 3) if others else r.longest_rr_s
    values = {"heart_rate_bpm": r.heart_rate_bpm, "irregular_share": r.irregular_share, "longest_rr_s": longest}
    if summary is not None:
        values |= {f"{c}_share": v for c, v in summary.share.items()}
        values |= {f"{c}_per_hour": v for c, v in summary.per_hour.items()}
        values |= {f"{c}_run": v for c, v in summary.fast_run.items()}
        values |= {f"{c}_run_s": v for c, v in summary.fast_run_s.items()}
    findings = []
    if readable:
        for rule in rules.rules:
            if rule.measure not in values:
                continue  # a beat-class rule without a beat classifier
            v = values[rule.measure]
            if (rule.below is not None and v < rule.below) or (rule.above is not None and v > rule.above):
                op = f"< {rule.below:g}" if rule.below is not None else f"> {rule.above:g}"
                findings.append(EcgFinding(id=rule.id, name=rule.name, measure=rule.measure, value=round(float(v), 3),
                                           threshold=f"{rule.measure} {op}", triage=rule.triage, source=rule.source))
        # a milder rule of the same measure adds nothing when a stronger one fired (bradycardia under marked)
        strongest: dict[str, EcgFinding] = {}
        for f in sorted(findings, key=lambda f: -triage_rank(f.triage)):
            strongest.setdefault(f.measure, f)
        findings = list(strongest.values())
    if not readable:
        level, advice = rules.unreadable.triage, rules.unreadable.advice
        reason = f"the recording cannot be read ({', '.join(q.flags) or 'too few beats found'})"
    elif findings:
        top = findings[0]
        level, advice = top.triage, next(r.advice for r in rules.rules if r.id == top.id)
        reason = f"{top.name.lower()} ({top.measure.replace('_', ' ')} {top.value:g})"
    else:
        level, advice, reason = rules.normal.triage, rules.normal.advice, "rate and rhythm within the screening limits"
    if readable and "noisy" in q.flags and triage_rank(level) < triage_rank(rules.unreadable.triage):
        level, reason = rules.unreadable.triage, reason + "; the signal is noisy, so the beats may be miscounted"
    a = EcgAssessment(
        rules=f"{rules.name} {rules.version}", record=sig.name, lead=sig.leads[i],
        lead_agreement={sig.leads[k]: v for k, v in choice.agreement.items()} if choice and lead is None else {}, fs=sig.fs,
        seconds=round(sig.seconds, 2), readable=readable, quality_flags=q.flags, detector=method, beats=len(peaks),
        heart_rate_bpm=_clean(r.heart_rate_bpm) if readable else None,
        rr={"mean_rr_ms": _clean(r.mean_rr_ms), "sdnn_ms": _clean(r.sdnn_ms), "rmssd_ms": _clean(r.rmssd_ms),
            "longest_rr_s": _clean(longest), "irregular_share": r.irregular_share, "nrmssd": r.nrmssd,
            "entropy": r.entropy}
        | ({"irregular_share_all_beats": rhythm(peaks, sig.fs).irregular_share} if conducted is not None else {}),
        findings=findings, beats_summary=summary, beats_note=beats_note,
        triage=TriageDecision(level=level, reason=reason), advice=advice,
    )
    return a, peaks
