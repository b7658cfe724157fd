"""Prediction: the decision policy and the assessment schema (no torch)."""

from carelens.predict.decision import DecisionPolicy, decide, decide_with_facts
from carelens.predict.engine import Engine, Inference, Result, collect_inputs, overlay_heatmap, write_results
from carelens.predict.schema import DISCLAIMER, Assessment, ClassProbability, ModelRef, TriageDecision

__all__ = [
    "DISCLAIMER",
    "Assessment",
    "ClassProbability",
    "DecisionPolicy",
    "Engine",
    "Inference",
    "ModelRef",
    "Result",
    "TriageDecision",
    "collect_inputs",
    "decide",
    "decide_with_facts",
    "overlay_heatmap",
    "write_results",
]
