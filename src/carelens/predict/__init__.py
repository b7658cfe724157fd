"""Prediction: the decision policy and the assessment schema (no torch)."""

from carelens.predict.decision import DecisionPolicy, decide
from carelens.predict.schema import DISCLAIMER, Assessment, ClassProbability, ModelRef, TriageDecision

__all__ = ["DISCLAIMER", "Assessment", "ClassProbability", "DecisionPolicy", "ModelRef", "TriageDecision", "decide"]
