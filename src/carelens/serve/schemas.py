"""API request and response models (separate from internal types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from carelens.bundle import Contribution
from carelens.ecg import EcgAssessment
from carelens.policy import Assessment

__all__ = ["EcgResponse", "ErrorResponse", "FeedbackRequest", "FeedbackResponse", "ModelInfo", "PredictResponse", "TriageResponse"]


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelInfo(BaseModel):
    name: str
    version: str
    task: str
    modality: str
    species: list[str] = Field(description="who the model is for; a request for another species is refused")
    care_provider: str = Field(description="who its advice sends people to (doctor, veterinarian)")
    classes: list[dict[str, str]]
    image_size: int | None = Field(None, description="image models: the side the image is resized to")
    inputs: list[dict[str, Any]] | None = Field(None, description=(
        "clinical (tabular) models: each input's type, unit, accepted range or values, whether required, aliases"))
    metrics: dict[str, Any]
    intended_use: str
    facts: dict[str, dict[str, Any]] | None = Field(
        None, description="clinical facts /v1/triage fuses with this model's images: type, range or values")
    decision: dict[str, Any] = Field(default_factory=dict, description=(
        "the decision settings in force: the bundle's, with this deployment's overrides"))


class PredictResponse(BaseModel):
    id: str = Field(description="prediction id, for /v1/feedback")
    assessment: Assessment
    heatmap_png: str | None = Field(None, description="base64 PNG overlay, when heatmap=true")
    contributions: list[Contribution] | None = Field(None, description=(
        "clinical models: how much each input moved the log-odds of the risk outcome, against a typical patient"))
    risk_outcome: str | None = Field(None, description="clinical models: the outcome the contributions are about")
    latency_ms: float


class TriageResponse(BaseModel):
    id: str
    assessment: Assessment
    sources: dict[str, Any]
    symptoms: dict[str, Any] | None = None
    facts_used: bool = False
    heatmap_png: str | None = None
    latency_ms: float


class EcgResponse(BaseModel):
    id: str
    assessment: EcgAssessment
    diagnosis: Assessment | None = Field(None, description=(
        "the loaded record model's assessment of the whole recording (e.g. PTB-XL superclasses of a 12-lead ECG), "
        "when one is loaded and the recording has its leads"))
    diagnosis_notes: list[str] = Field(default_factory=list, description="why no record model could read it")
    strip_png: str | None = Field(None, description="base64 PNG: 10 s of the lead with the detected beats: around "
                                                 "the longest gap between beats when the screen found a pause, else the "
                                                 "first 10 s")
    latency_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_id: str = Field(min_length=1, max_length=64)
    diagnosis: str = Field(min_length=1, max_length=128, description="the confirmed diagnosis (class id or text)")
    note: str = Field("", max_length=2000)


class FeedbackResponse(BaseModel):
    feedback_id: int
    prediction_id: str


class ChatResponse(BaseModel):
    session_id: str = Field(description="send it back to continue the conversation")
    species: str | None = None
    assessment: Assessment | None = Field(None, description="None until there is a photo or a recognised symptom")
    explanation: str = Field(description="the answer in plain words")
    explained_by: Literal["template", "llm"]
    guardrail_failures: list[str] = Field(default_factory=list, description="why a language-model answer was replaced")
    symptoms: dict[str, Any] | None = None
    heatmap_png: str | None = None
    latency_ms: float


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str
    created: str
    assessment: dict[str, Any] | None = None
    explained_by: str | None = None
