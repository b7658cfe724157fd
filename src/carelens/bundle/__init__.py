"""The model bundle: one self-describing, verified artifact (format, load, verify): image bundles (ONNX) and
clinical (tabular) bundles (JSON coefficients) and signal bundles (a 1-D network over heartbeats). Loading needs no torch;
writing one from a training run is the export step (:mod:`carelens.steps.export`)."""

from carelens.bundle._any import load_any
from carelens.bundle._folder import bundle_folder, check_bundle_target
from carelens.bundle._load import Bundle, int8_instructions, load_bundle, make_session, selftest_input
from carelens.bundle._manifest import (
    FORMAT_VERSION,
    HEAD_FILE,
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
    bundle_identity,
)
from carelens.bundle._signal import SIGNAL_FORMAT, SignalBundle, SignalSpec, is_signal, write_signal_bundle
from carelens.bundle._tabular import (
    TABULAR_FORMAT,
    Contribution,
    InputField,
    TabularBundle,
    TabularSpec,
    is_tabular,
    write_tabular_bundle,
)
from carelens.signing import SIGNATURE_FILE, generate_keys, load_trusted_keys, sign_bundle, verify_signature

__all__ = [
    "FORMAT_VERSION",
    "HEAD_FILE",
    "REQUIRED_FILES",
    "SIGNAL_FORMAT",
    "SIGNATURE_FILE",
    "TABULAR_FORMAT",
    "Bundle",
    "BundleSpec",
    "ConformalParams",
    "Contribution",
    "DecisionParams",
    "FactsSection",
    "InputField",
    "ModelIO",
    "MultilabelParams",
    "OODParams",
    "SelfTest",
    "SignalBundle",
    "SignalSpec",
    "SplitInfo",
    "TabularBundle",
    "TabularSpec",
    "bundle_folder",
    "bundle_identity",
    "check_bundle_target",
    "generate_keys",
    "int8_instructions",
    "is_signal",
    "is_tabular",
    "load_any",
    "load_bundle",
    "load_trusted_keys",
    "make_session",
    "selftest_input",
    "sign_bundle",
    "verify_signature",
    "write_signal_bundle",
    "write_tabular_bundle",
]
