"""Symptoms and clinical facts: vocabulary, free-text parsing, models, fusion (no torch)."""

from carelens.symptoms._bundle import SymptomBundle, build_symptom_bundle
from carelens.symptoms._clinical import HEART, HORSE_COLIC, cross_validate, load_heart, load_horse_colic
from carelens.symptoms._data import SymptomTable, load_kaggle_table, partial_reports, split_patterns
from carelens.symptoms._facts import FactsFusion, infer_fact_kinds, parse_fact_pairs
from carelens.symptoms._fusion import LogLinearPooling, conflict
from carelens.symptoms._models import FactsEncoder, LinearModel, TabularModel
from carelens.symptoms._parse import DEFAULT_THRESHOLD, ParsedSymptoms, SymptomParser
from carelens.symptoms._triage import combine_assessments, triage
from carelens.symptoms._vocabulary import Symptom, Vocabulary, clean_symptom_name, load_kaggle_vocabulary

__all__ = [
    "DEFAULT_THRESHOLD",
    "HEART",
    "HORSE_COLIC",
    "FactsEncoder",
    "FactsFusion",
    "LinearModel",
    "LogLinearPooling",
    "ParsedSymptoms",
    "Symptom",
    "SymptomBundle",
    "SymptomParser",
    "SymptomTable",
    "TabularModel",
    "Vocabulary",
    "build_symptom_bundle",
    "clean_symptom_name",
    "combine_assessments",
    "conflict",
    "cross_validate",
    "infer_fact_kinds",
    "load_heart",
    "load_horse_colic",
    "load_kaggle_table",
    "load_kaggle_vocabulary",
    "parse_fact_pairs",
    "partial_reports",
    "split_patterns",
    "triage",
]
