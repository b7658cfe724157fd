"""Evaluation reports (on top of predict): run a bundle over a split once, derive every figure from the saved
predictions, write a self-contained HTML report; fit an image + symptom fusion on paired cases."""

from carelens.report.evaluate import EdgeCase, Evaluation, evaluate, metrics_from_predictions, resolve_splits
from carelens.report.html import write_comparison, write_ecg_report, write_report, write_table_report
from carelens.report.symptom_fusion import fit_symptom_fusion
from carelens.report.tabular import TableEvaluation, evaluate_table

__all__ = ["EdgeCase", "Evaluation", "TableEvaluation", "evaluate", "evaluate_table", "fit_symptom_fusion", "metrics_from_predictions", "resolve_splits", "write_comparison", "write_ecg_report",
           "write_report", "write_table_report"]
