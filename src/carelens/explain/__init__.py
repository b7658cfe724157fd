"""Plain-language answers: an assessment turned into a short explanation for the person (or the pet's owner).

The default is offline and deterministic (:func:`template_explanation`). An OpenAI-compatible chat model may
phrase it instead (:class:`LlmExplainer`), given only the assessment and the person's words; every answer it
gives is checked in code (:func:`check_answer`) and replaced by the template when it fails. The triage level
is always carelens's own, never the language model's.
"""

from carelens.explain._guardrails import GuardrailResult, check_answer
from carelens.explain._llm import LlmExplainer, LlmSettings
from carelens.explain._templates import Explanation, explain, template_explanation

__all__ = ["Explanation", "GuardrailResult", "LlmExplainer", "LlmSettings", "check_answer", "explain",
           "template_explanation"]
