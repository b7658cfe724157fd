"""An OpenAI-compatible chat model (OpenAI, a local Ollama or vLLM server) phrasing the explanation.

It is given only the assessment and the person's words, told how cautious to be from the confidence tier and
which conditions and urgency it must keep to. Its answer is checked (:func:`check_answer`); a failing answer, a
timeout or an error gives the template answer instead, with the reason."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from carelens.explain._guardrails import check_answer
from carelens.explain._templates import Explanation, template_explanation
from carelens.labels import LabelSpec
from carelens.policy import Assessment

__all__ = ["CAUTION", "LlmExplainer", "LlmSettings"]

CAUTION = {
    "likely": "The model is fairly sure: you may name the most likely condition plainly.",
    "possible": "The model is not sure: say 'possibly' and mention the other plausible conditions.",
    "uncertain": "The model is unsure: do not present any condition as the answer; stress seeing a professional.",
}


class LlmSettings(BaseSettings):
    """CARELENS_LLM_URL / _MODEL / _API_KEY / _TIMEOUT_S / _MAX_CHARS; no URL: templates only."""

    model_config = SettingsConfigDict(env_prefix="CARELENS_LLM_", env_file=".env", extra="ignore",
                                      protected_namespaces=("settings_",))
    url: str | None = Field(None, description="base URL of an OpenAI-compatible API, e.g. http://localhost:11434/v1")
    model: str = Field("gpt-4o-mini", description="chat model name")
    api_key: str = Field("", description="bearer token, if the endpoint needs one")
    timeout_s: float = Field(10.0, gt=0, description="longest wait for an answer before the template is used")
    max_chars: int = Field(1200, ge=100, description="longest answer accepted")


class LlmExplainer:
    """Explains with the language model, falls back to the template; counts what happened."""

    def __init__(self, settings: LlmSettings, client: httpx.Client | None = None) -> None:
        if not settings.url:
            raise ValueError("LlmExplainer needs CARELENS_LLM_URL")
        self.settings = settings
        self.client = client or httpx.Client(timeout=settings.timeout_s)
        self.counts = {"llm": 0, "guardrail_fallback": 0, "error_fallback": 0}

    def messages(self, a: Assessment, spec: LabelSpec, words: str | None) -> list[dict[str, str]]:
        allowed = [spec.get(c).name for c in dict.fromkeys([*a.prediction_set, a.top[0].id]) if c in spec.class_ids]
        who = "a pet owner" if spec.veterinary else "a patient"
        system = (
            f"You explain an automated triage assessment to {who} in at most 120 words, in plain language. "
            f"{CAUTION[a.confidence]} Mention no condition other than: {', '.join(allowed)}. "
            f"The advice on how soon to get care is fixed and you must not soften it: "
            f"'{spec.action(a.triage.level)}' "
            "End with the words 'This is not a diagnosis.'"
        )
        facts = {"assessment": a.model_dump(mode="json", exclude={"disclaimer", "model"})}
        user = json.dumps(facts) + (f"\nTheir words: {words}" if words else "")
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def ask(self, messages: list[dict[str, str]]) -> str:
        s = self.settings
        headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
        r = self.client.post(s.url.rstrip("/") + "/chat/completions", headers=headers, timeout=s.timeout_s,  # type: ignore[union-attr]
                             json={"model": s.model, "messages": messages, "temperature": 0})
        r.raise_for_status()
        body: Any = r.json()
        return str(body["choices"][0]["message"]["content"])

    def explain(self, a: Assessment, spec: LabelSpec, words: str | None = None) -> Explanation:
        try:
            answer = self.ask(self.messages(a, spec, words))
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            self.counts["error_fallback"] += 1
            return Explanation(template_explanation(a, spec), "template", (f"language model failed: {type(exc).__name__}",))
        verdict = check_answer(answer, a, spec, max_chars=self.settings.max_chars)
        if not verdict.ok:
            self.counts["guardrail_fallback"] += 1
            return Explanation(template_explanation(a, spec), "template", verdict.failures)
        self.counts["llm"] += 1
        return Explanation(answer.strip(), "llm")
