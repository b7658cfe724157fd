"""The model bundle: one self-describing, verified artifact (format, load, verify). Loading needs no torch;
writing one from a training run is the export step (:mod:`carelens.steps.export`)."""

from carelens.bundle._load import Bundle, load_bundle, make_session, selftest_input
from carelens.bundle._manifest import (
    FORMAT_VERSION,
    REQUIRED_FILES,
    BundleSpec,
    ConformalParams,
    DecisionParams,
    FactsSection,
    ModelIO,
    MultilabelParams,
    OODParams,
    SelfTest,
    SplitInfo,
)
from carelens.bundle._signing import SIGNATURE_FILE, generate_keys, load_trusted_keys, sign_bundle

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_FILES",
    "SIGNATURE_FILE",
    "Bundle",
    "BundleSpec",
    "ConformalParams",
    "DecisionParams",
    "FactsSection",
    "ModelIO",
    "MultilabelParams",
    "OODParams",
    "SelfTest",
    "SplitInfo",
    "generate_keys",
    "load_bundle",
    "load_trusted_keys",
    "make_session",
    "selftest_input",
    "sign_bundle",
]
