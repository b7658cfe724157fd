"""The assessment: what every prediction returns (one schema for CLI, API and reports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DISCLAIMER", "Assessment", "ClassProbability", "Finding", "ModelRef", "TriageDecision"]

DISCLAIMER = (
    "Not a diagnosis. This is an automated estimate from models with known error rates; "
    "a qualified professional must confirm any finding. If the person or animal seems seriously unwell, "
    "seek care now regardless of this result."
)


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    version: str


class ClassProbability(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    probability: float = Field(ge=0, le=1, description="calibrated (temperature-scaled)")
    group: str
    severity: str


TriageLevel = Literal["self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance"]


class Finding(BaseModel):
    """One condition of a multi-label assessment, with how severe it most likely is."""

    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    probability: float = Field(ge=0, le=1, description="calibrated probability that the condition is present")
    present: bool = Field(description="above the condition's decision threshold (chosen on validation)")
    kept: bool = Field(description="kept by conformal risk control (the expected share of conditions missed <= alpha)")
    severity: str | None = Field(description="most likely severity level, if the condition is graded")
    severity_probability: float | None = None
    severity_distribution: dict[str, float] = Field(default_factory=dict)
    triage: TriageLevel
    group: str


class TriageDecision(BaseModel):
    model_config = ConfigDict(frozen=True)
    level: Literal["self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance"]
    reason: str


class Assessment(BaseModel):
    model_config = ConfigDict(frozen=True)
    model: ModelRef
    task: Literal["multiclass", "multilabel"] = "multiclass"
    in_distribution: bool
    ood_score: float = Field(description="share of validation images at least as unusual; low = out of distribution")
    top: list[ClassProbability] = Field(description=(
        "the leading findings, the class the model calls first: by calibrated probability, or, when the model ships "
        "finding weights (so that common conditions do not swallow rare ones), by probability x weight"))
    probabilities: dict[str, float] = Field(default_factory=dict, description=(
        "multi-class models: every class's calibrated probability (class id -> probability), so that another "
        "source over the same conditions (a symptom model) can be fused with this one"))
    prediction_set: list[str]
    coverage: float
    confidence: Literal["likely", "possible", "uncertain"]
    flags: list[Literal["ambiguous", "out_of_distribution", "multi_system", "symptom_conflict"]]
    triage: TriageDecision
    advice: str
    findings: list[Finding] = Field(default_factory=list, description=(
        "multi-label models: every condition present or kept, most probable first, with its severity"))
    based_on: list[Literal["image", "facts", "symptoms", "signal"]] = Field(
        default_factory=list, description="the sources this assessment fused (image, clinical facts, symptoms, ECG signal)")
    disclaimer: str = DISCLAIMER
