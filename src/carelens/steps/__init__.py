"""The run folder and the steps that read and write it.

:class:`Run` owns a training run's folder (its file names, typed config and artifacts); training writes it,
:func:`calibrate_run` adds the fitted calibration, and :mod:`carelens.steps.export` (imports torch) turns it
into a bundle; :func:`build_clinical` makes a clinical (tabular) bundle from a table. Every step reads the previous step's saved output, so any step can be rerun alone.
"""

from carelens.steps.calibrate import calibrate_run
from carelens.steps.clinical import CLINICAL_SETS, build_clinical, read_clinical_table
from carelens.steps.multilabel import (
    calibrate_multilabel,
    choose_multilabel_rule,
    multilabel_report,
    ood_classes,
    triage_levels_multilabel,
    urgent_recall_floor,
)
from carelens.steps.run import Calibration, DatasetRef, Predictions, Run, RunConfig

__all__ = ["CLINICAL_SETS", "Calibration", "DatasetRef", "Predictions", "Run", "RunConfig", "build_clinical",
           "calibrate_multilabel", "calibrate_run", "choose_multilabel_rule", "multilabel_report", "ood_classes",
           "read_clinical_table", "triage_levels_multilabel", "urgent_recall_floor"]
