"""The public surface is pinned: changing it is a deliberate act."""

import importlib

import pytest

EXPECTED = {
    "carelens": {"CarelensError", "__version__"},
    "carelens.errors": {"BundleError", "CarelensError", "ChecksumError", "ConfigError", "DataError", "FactsError",
                        "ImageReadError", "ImageTooLargeError", "LabelSpecError", "MissingExtraError", "NotAnImageError",
                        "NotFittedError", "NothingRecognisedError"},
    "carelens.labels": {"SEVERITIES", "TASKS", "TRIAGE_ACTIONS", "TRIAGE_LEVELS", "Checklist", "ClassSpec", "DomainSymptom", "LabelSpec", "MergeRule", "SeverityLevel",
                        "NO_CRITICAL_NOTE", "NO_SPEC_NOTE", "builtin_specs", "label_problems", "load_spec", "spec_from_labels", "template_spec", "triage_rank"},
    "carelens.tasks": {"SEVERITY_HEADS", "OutputLayout", "encode_findings", "sigmoid"},
    "carelens.preprocess": {"PreprocessConfig", "normalize", "preprocess", "preprocess_batch", "resize_image"},
    "carelens.config": {"AUGMENT_PRESETS", "BACKBONES", "IMBALANCE_STRATEGIES", "MIRRORING_PRESETS", "MONITORS",
                        "TrainConfig"},
    "carelens.settings": {"DATA_ENV", "cache_dir", "data_root", "threads_per_process", "useful_lanes"},
    "carelens.validation": {"check_features", "check_is_fitted", "check_logits"},
    "carelens.hashing": {"canonical_digest", "check_digests", "file_digest", "integrity_digest"},
    "carelens.signing": {"SIGNATURE_FILE", "generate_keys", "key_id", "load_trusted_keys", "sign_bundle",
                         "verify_signature"},
    "carelens.console": {"console", "err_console", "notice", "progress_bar"},
    "carelens.plots": {"confusion_png", "curves_png", "ood_histogram_png", "operating_points_png", "reliability_png",
                       "risk_coverage_png", "roc_png", "set_size_png"},
    "carelens.metrics": {"balanced_accuracy", "rate_upper_bound", "binary_calibration_report", "calibration_report", "classification_metrics",
                         "coverage_report", "decisions", "ece_noise_floor",
                         "expected_calibration_error", "fnr", "macro_auc", "multilabel_metrics", "nll", "reliability",
                         "risk_coverage", "severity_metrics", "softmax"},
    "carelens.policy": {"CRITICAL_THRESHOLDS", "DISCLAIMER", "URGENT", "Assessment", "check_target", "choose_decision_rule", "choose_rule_by_levels", "level_agreement", "rule_bound_text", "rule_summary", "ClassProbability", "DecisionPolicy", "Finding",
                        "ModelRef", "MultilabelDecision", "TriageDecision", "critical_miss_rate", "ood_at_floor", "decide",
                        "decide_multilabel", "decide_with_facts", "keep_urgency", "multilabel_decision", "over_triage_rate",
                        "required_levels", "triage_grade", "triage_levels",
                        "triage_levels_by_threshold"},
    "carelens.data": {"KAGGLE_SETS", "KaggleSet", "fetch_kaggle", "kaggle_credentials", 
        "DECODE_MIN_SIDE", "HAM10000_FORMAT", "HAM10000_KAGGLE_FORMAT", "IMAGE_SUFFIXES", "MAX_PIXELS", "MEDMNIST", "SPLIT_NAMES", "AuditReport", "ClassAudit",
        "NO_FINDING", "ODIR_GRADES", "SYNTH_CONDITIONS", "findings_label", "is_condition_folder", "odir_eye_findings",
        "read_condition_folder", "read_odir", "synthetic_skin_image", "write_synthetic_multilabel", "DOG_SKIN",
        "write_synthetic_dog_cases",
        "Dataset", "Example", "ManifestFormat", "ScanResult", "Splits", "UnreadableImageWarning", "audit_dataset",
        "decode_image", "fetch_medmnist", "groups_from_pairs", "is_split_layout", "load_run_splits", "load_splits", "make_folds", "make_splits", "md5sum",
        "near_duplicate_pairs", "open_dataset", "read_folder", "read_image", "read_manifest", "read_medmnist",
        "read_split_document", "read_split_folders", "read_table", "scan_dataset", "split_dataset", "to_rgb_array", "verify_md5",
    },
    "carelens.calibrate": {"SCALERS", "ScalerChoice", "ConformalClassifier", "ConformalScore", "MultilabelCalibrator", "OODGate", "OODMethod",
                           "TemperatureScaler", "choose_finding_weights", "choose_scaler", "conformal_quantile", "prior_weights", "conservative_rank", "nonconformity", "risk_control_threshold"},
    "carelens.ecg": {"AAMI", "AAMI_CLASSES", "BEAT_WINDOW", "PTBXL_FOLDS", "PTBXL_SUPERCLASSES", "PtbxlSet", "read_ptbxl", "BeatClassifier", "BeatSummary", "DS1", "DS2", "FAST_RUN_BPM", "VENTRICULAR_BEATS", "fast_run", "BeatSet", "beat_features", "read_mitbih_beats", "DEFAULT_METHOD", "METHODS", "EcgAssessment", "EcgFinding", "EcgSignal", "Quality", "Rhythm",
                     "RhythmRules", "LeadChoice", "detect_best_lead", "detector_agreement", "local_peaks", "localise", "signal_searchback", "confirmed_longest_rr", "detect_rpeaks", "strip_png", "StripWindow", "evidence_window", "longest_gap_window", "load_rules", "read_ecg", "require", "resample", "rhythm", "screen",
                     "searchback", "signal_quality"},
    "carelens.explain": {"Explanation", "GuardrailResult", "LlmExplainer", "LlmSettings", "check_answer", "explain",
                         "template_explanation"},
    "carelens.scenarios": {"Expect", "Scenario", "ScenarioFile", "ScenarioResult", "ScriptedLlm", "Step", "StepResult",
                           "load_scenarios", "run_scenarios", "scripted_llm", "write_scenario_report"},
    "carelens.fusion": {"FactsEncoder", "FactsFusion", "LinearModel", "LogLinearPooling", "TabularModel", "conflict",
                        "infer_fact_kinds", "is_missing", "parse_fact_pairs"},
    "carelens.bundle": {"bundle_folder", "check_bundle_target", "load_any", "verify_signature", "FORMAT_VERSION", "HEAD_FILE", "REQUIRED_FILES", "bundle_identity", "SIGNATURE_FILE", "Bundle", "int8_instructions", "BundleSpec", "ConformalParams", "DecisionParams",
                        "FactsSection", "ModelIO", "MultilabelParams", "OODParams", "SelfTest", "SplitInfo", "generate_keys", "load_bundle",
                        "load_trusted_keys", "make_session", "selftest_input", "sign_bundle", "TABULAR_FORMAT", "Contribution",
                        "InputField", "TabularBundle", "TabularSpec", "is_tabular", "write_tabular_bundle", "SIGNAL_FORMAT",
                        "SignalBundle", "SignalSpec", "is_signal", "write_signal_bundle"},
    "carelens.steps": {"Calibration", "DatasetRef", "Predictions", "Run", "RunConfig", "calibrate_multilabel", "choose_multilabel_rule", "ood_classes", "urgent_recall_floor",
                       "calibrate_run", "multilabel_report", "triage_levels_multilabel", "CLINICAL_SETS", "build_clinical",
                       "read_clinical_table"},
    "carelens.steps.export": {"export_run", "load_run_model"},
    "carelens.models": {"GRAPH_OUTPUTS", "OPSET", "ShippedGraph", "export_onnx", "Backbone", "BeatNet", "Classifier", "RecordNet", "MulticlassHead", "MultilabelHead", "build_backbone", "build_classifier",
                        "embed_images"},
    "carelens.train": {"AUGMENT_PRESETS", "IMBALANCE_STRATEGIES", "FocalLoss", "MlflowTracker", "RunResult", "TrainConfig", "build_augment",
                       "Tracker", "ONNX_MIN_IMAGES", "build_loss", "class_weights", "configure_runtime", "cross_validate", "load_split", "make_tracker", "predict_logits", "train",
                       "SignalTrainResult", "export_beats", "export_records", "out_of_fold_records", "predict_beats", "train_beats", "predict_records", "train_records"},
    "carelens.predict": {"HEATMAP_MAX_SIDE", "Engine", "Inference", "Result", "MAX_WINDOWS", "assess_record", "assess_recordings", "beat_classifier", "record_windows", "capped_size", "collect_inputs",
                         "overlay_heatmap", "predict_table", "write_results"},
    "carelens.symptoms": {
        "DEFAULT_THRESHOLD", "HEART", "HEART_INPUTS", "HORSE_COLIC", "HORSE_COLIC_INPUTS", "ImageSymptomFusion", "MiniLMEncoder", "ParsedSymptoms", "Symptom", "SymptomBundle",
        "SymptomParser", "SymptomTable", "Vocabulary", "build_symptom_bundle", "clean_symptom_name",
        "combine_assessments", "cross_validate", "frames_of", "fuse_assessments", "load_heart", "load_horse_colic", "load_kaggle_table",
        "load_kaggle_vocabulary", "load_symptom_table", "spec_from_labels", "partial_reports", "split_patterns", "triage",
        "synonym_template"},
    "carelens.report": {"EdgeCase", "Evaluation", "TableEvaluation", "evaluate", "evaluate_table", "write_table_report", "fit_symptom_fusion", "metrics_from_predictions", "resolve_splits",
                        "write_comparison", "write_ecg_report", "write_report"},
    "carelens.serve": {"ServeSettings", "SmokeCheck", "create_app", "smoke"},
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_public_api(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPECTED[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
