"""The scenario file (YAML): each scenario is one conversation, each step one message with what must hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carelens.errors import ConfigError

__all__ = ["Expect", "ImageSpec", "Scenario", "ScenarioFile", "Step", "load_scenarios"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(_Strict):
    """Where a step's photo comes from: a file under the data folder (an unrelated photo is one from another
    set), a generated image (blank, noise, a heavy blur of a data file), or a generated skin image."""

    data: str | None = None  # path relative to CARELENS_DATA
    generated: Literal["blank", "noise", "blur"] | None = None
    skin: dict[str, str] | None = None  # condition -> severity (carelens.data.synthetic_skin_image)


class Expect(_Strict):
    status: int = 200
    error_type: str | None = None
    triage_at_least: str | None = None
    triage_at_most: str | None = None
    flags_include: list[str] = Field(default_factory=list)
    flags_exclude: list[str] = Field(default_factory=list)
    confidence_in: list[str] = Field(default_factory=list)
    based_on_include: list[str] = Field(default_factory=list)
    no_assessment: bool = False
    explained_by: Literal["template", "llm"] | None = None
    explanation_contains: list[str] = Field(default_factory=list)
    guardrail_failure_contains: str | None = None
    symptoms_present_include: list[str] = Field(default_factory=list)
    symptoms_absent_include: list[str] = Field(default_factory=list)
    findings_include: list[str] = Field(default_factory=list)
    prediction_set_include: list[str] = Field(default_factory=list)


class Step(_Strict):
    message: str = ""
    image: ImageSpec | None = None
    model: str | None = None
    facts: dict[str, Any] | None = None
    llm_answer: str | None = None  # what the scripted language model answers this step (needs one)
    llm_delay_s: float = 0.0
    expect: Expect = Field(default_factory=Expect)


class Scenario(_Strict):
    name: str
    species: str | None = None
    why: str = ""
    steps: list[Step] = Field(min_length=1)


class ScenarioFile(_Strict):
    title: str = "scenarios"
    scenarios: list[Scenario] = Field(min_length=1)


def load_scenarios(path: str | Path) -> ScenarioFile:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        return ScenarioFile.model_validate(raw)
    except OSError as exc:
        raise ConfigError(f"scenario file {p} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"scenario file {p} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"scenario file {p}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
