"""Prediction (no torch): the ONNX Runtime engine that turns images into assessments, heatmaps, and the
readers and writers of `carelens predict`. The assessment schema and decision policy are in
:mod:`carelens.policy`."""

from carelens.predict.engine import Engine, Inference, Result, collect_inputs, overlay_heatmap, write_results

__all__ = ["Engine", "Inference", "Result", "collect_inputs", "overlay_heatmap", "write_results"]
