"""The public surface is pinned: changing it is a deliberate act."""

import importlib

import pytest

EXPECTED = {
    "carelens": {"CarelensError", "__version__"},
    "carelens.labels": {"SEVERITIES", "TRIAGE_LEVELS", "ClassSpec", "LabelSpec", "MergeRule", "builtin_specs",
                        "load_spec", "triage_rank"},
    "carelens.data": {
        "HAM10000_FORMAT", "IMAGE_SUFFIXES", "MEDMNIST", "SPLIT_NAMES", "AuditReport", "ClassAudit", "Dataset",
        "Example", "ManifestFormat", "ScanResult", "Splits", "UnreadableImageWarning", "audit_dataset",
        "decode_image", "fetch_medmnist", "groups_from_pairs", "load_run_splits", "load_splits", "make_splits", "md5sum",
        "near_duplicate_pairs", "open_dataset", "read_folder", "read_image", "read_manifest", "read_medmnist",
        "scan_dataset", "split_dataset", "to_rgb_array", "verify_md5",
    },
    "carelens.calibrate": {
        "Calibration", "ConformalClassifier", "OODGate", "TemperatureScaler", "calibrate_run", "calibration_report",
        "check_logits", "conformal_quantile", "coverage_report", "critical_miss_rate", "expected_calibration_error",
        "load_calibration", "nonconformity", "reliability", "softmax",
    },
    "carelens.bundle": {"FORMAT_VERSION", "Bundle", "BundleError", "BundleSpec", "load_bundle", "make_session"},
    "carelens.predict": {
        "DISCLAIMER", "Assessment", "ClassProbability", "DecisionPolicy", "Engine", "Inference", "ModelRef", "Result",
        "TriageDecision", "collect_inputs", "decide", "decide_with_facts", "overlay_heatmap", "write_results",
    },
    "carelens.serve": {"ServeSettings", "create_app"},
    "carelens.report": {"classification_metrics"},
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_public_api(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPECTED[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
