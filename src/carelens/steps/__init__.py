"""The run folder and the steps that read and write it.

:class:`Run` owns a training run's folder (its file names, typed config and artifacts); training writes it,
:func:`calibrate_run` adds the fitted calibration, and :mod:`carelens.steps.export` (imports torch) turns it
into a bundle. Every step reads the previous step's saved output, so any step can be rerun alone.
"""

from carelens.steps.calibrate import calibrate_run
from carelens.steps.multilabel import calibrate_multilabel, multilabel_report, triage_levels_multilabel
from carelens.steps.run import Calibration, DatasetRef, Predictions, Run, RunConfig

__all__ = ["Calibration", "DatasetRef", "Predictions", "Run", "RunConfig", "calibrate_multilabel", "calibrate_run",
           "multilabel_report", "triage_levels_multilabel"]
