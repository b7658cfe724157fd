"""Fusion (numpy; no torch): models of clinical facts and symptom tables stored as plain JSON, log-linear
pooling of calibrated distributions, and the facts model fused with an image model.

Calibrate (fits it), bundle (carries it), predict (applies it) and symptoms (uses its linear models) all
import it downward."""

from carelens.fusion._facts import FactsFusion, infer_fact_kinds, parse_fact_pairs
from carelens.fusion._pooling import LogLinearPooling, conflict
from carelens.fusion._tabular import FactsEncoder, LinearModel, TabularModel, is_missing

__all__ = [
    "FactsEncoder",
    "FactsFusion",
    "LinearModel",
    "LogLinearPooling",
    "TabularModel",
    "conflict",
    "infer_fact_kinds",
    "is_missing",
    "parse_fact_pairs",
]
