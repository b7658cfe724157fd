"""Symptoms (no torch): the vocabulary, free-text parsing, the symptom bundle, combining a symptom assessment
with an image assessment (fused over shared condition ids when fitted), and the clinical tables (heart disease, horse colic)."""

from carelens.symptoms._bundle import SymptomBundle, build_symptom_bundle
from carelens.symptoms._clinical import (
    HEART,
    HEART_INPUTS,
    HORSE_COLIC,
    HORSE_COLIC_INPUTS,
    cross_validate,
    load_heart,
    load_horse_colic,
)
from carelens.symptoms._data import SymptomTable, load_kaggle_table, partial_reports, split_patterns
from carelens.symptoms._encoder import MiniLMEncoder
from carelens.symptoms._fusion import ImageSymptomFusion
from carelens.symptoms._parse import DEFAULT_THRESHOLD, ParsedSymptoms, SymptomParser
from carelens.symptoms._table import load_symptom_table, spec_from_labels
from carelens.symptoms._triage import combine_assessments, fuse_assessments, triage
from carelens.symptoms._vocabulary import (
    Symptom,
    Vocabulary,
    clean_symptom_name,
    frames_of,
    load_kaggle_vocabulary,
    synonym_template,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "HEART",
    "HEART_INPUTS",
    "HORSE_COLIC",
    "HORSE_COLIC_INPUTS",
    "ImageSymptomFusion",
    "MiniLMEncoder",
    "ParsedSymptoms",
    "Symptom",
    "SymptomBundle",
    "SymptomParser",
    "SymptomTable",
    "Vocabulary",
    "build_symptom_bundle",
    "clean_symptom_name",
    "combine_assessments",
    "cross_validate",
    "frames_of",
    "fuse_assessments",
    "load_heart",
    "load_horse_colic",
    "load_kaggle_table",
    "load_kaggle_vocabulary",
    "load_symptom_table",
    "partial_reports",
    "spec_from_labels",
    "split_patterns",
    "synonym_template",
    "triage",
]
