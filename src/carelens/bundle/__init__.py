"""The model bundle: one self-describing, verified artifact (format, load, verify). Loading needs no torch;
writing one from a training run is the export step (:mod:`carelens.steps.export`)."""

from carelens.bundle._load import Bundle, load_bundle, make_session, selftest_input
from carelens.bundle._manifest import (
    FORMAT_VERSION,
    BundleSpec,
    ConformalParams,
    FactsSection,
    ModelIO,
    OODParams,
    SelfTest,
    SplitInfo,
)

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleSpec",
    "ConformalParams",
    "FactsSection",
    "ModelIO",
    "OODParams",
    "SelfTest",
    "SplitInfo",
    "load_bundle",
    "make_session",
    "selftest_input",
]
