"""Prediction (no torch): the ONNX Runtime engine that turns images into assessments, heatmaps, and the
readers and writers of `carelens predict`. The assessment schema and decision policy are in
:mod:`carelens.policy`."""

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

__all__ = ["HEATMAP_MAX_SIDE", "Engine", "Inference", "Result", "capped_size", "collect_inputs", "overlay_heatmap",
           "write_results"]
