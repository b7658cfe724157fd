"""Metrics, plots and reports."""

from carelens.report.metrics import classification_metrics

__all__ = ["classification_metrics"]
