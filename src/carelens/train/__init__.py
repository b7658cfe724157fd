"""Training (imports torch; not needed for predict or serve): the two-phase trainer that writes a run folder
(:class:`carelens.steps.Run`), losses for imbalanced data, augmentation presets, experiment tracking (MLflow); the heartbeat (1-D) trainer; several processes with DistributedDataParallel."""

from carelens.config import AUGMENT_PRESETS, IMBALANCE_STRATEGIES, TrainConfig
from carelens.train._augment import build_augment
from carelens.train._crossval import cross_validate
from carelens.train._losses import FocalLoss, build_loss, class_weights
from carelens.train._runtime import configure_runtime
from carelens.train._signal import (
    SignalTrainResult,
    export_beats,
    export_records,
    out_of_fold_records,
    predict_beats,
    predict_records,
    train_beats,
    train_records,
)
from carelens.train._tracking import MlflowTracker, Tracker, make_tracker
from carelens.train._trainer import ONNX_MIN_IMAGES, RunResult, load_split, predict_logits, train

__all__ = [
    "AUGMENT_PRESETS",
    "IMBALANCE_STRATEGIES",
    "ONNX_MIN_IMAGES",
    "FocalLoss",
    "MlflowTracker",
    "RunResult",
    "SignalTrainResult",
    "Tracker",
    "TrainConfig",
    "build_augment",
    "build_loss",
    "class_weights",
    "configure_runtime",
    "cross_validate",
    "export_beats",
    "export_records",
    "load_split",
    "make_tracker",
    "out_of_fold_records",
    "predict_beats",
    "predict_logits",
    "predict_records",
    "train",
    "train_beats",
    "train_records",
]
