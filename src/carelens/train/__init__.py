"""Training (imports torch; not needed for predict or serve)."""

from carelens.train._config import AUGMENT_PRESETS, IMBALANCE_STRATEGIES, TrainConfig
from carelens.train._losses import FocalLoss, build_loss, class_weights
from carelens.train._runs import embed_images, load_run_model
from carelens.train._trainer import RunResult, load_split, predict_logits, train

__all__ = [
    "AUGMENT_PRESETS",
    "IMBALANCE_STRATEGIES",
    "FocalLoss",
    "RunResult",
    "TrainConfig",
    "build_loss",
    "class_weights",
    "embed_images",
    "load_run_model",
    "load_split",
    "predict_logits",
    "train",
]
