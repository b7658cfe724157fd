"""Prediction (no torch): the ONNX Runtime engine that turns images into assessments, heatmaps, the
clinical (tabular) bundles' row-by-row assessments, and the
readers and writers of `carelens predict`. The assessment schema and decision policy are in
:mod:`carelens.policy`."""

from carelens.predict.ecg import MAX_WINDOWS, assess_record, assess_recordings, beat_classifier, record_windows
from carelens.predict.engine import (
    HEATMAP_MAX_SIDE,
    Engine,
    Inference,
    Result,
    capped_size,
    collect_inputs,
    overlay_heatmap,
    write_results,
)
from carelens.predict.tabular import predict_table

__all__ = [
    "HEATMAP_MAX_SIDE",
    "MAX_WINDOWS",
    "Engine",
    "Inference",
    "Result",
    "assess_record",
    "assess_recordings",
    "beat_classifier",
    "capped_size",
    "collect_inputs",
    "overlay_heatmap",
    "predict_table",
    "record_windows",
    "write_results",
]
