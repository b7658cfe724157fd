"""The training recipe, typed and validated: a bad config fails before any image is read.

It sits at the bottom of the package (no torch) so that the run folder, the steps that read it and
the trainer all share one definition. The recipe holds the :class:`~carelens.preprocess.PreprocessConfig`
it trains with; nothing copies its fields.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from carelens.errors import ConfigError
from carelens.preprocess import PreprocessConfig

__all__ = ["AUGMENT_PRESETS", "BACKBONES", "IMBALANCE_STRATEGIES", "MIRRORING_PRESETS", "MONITORS", "TrainConfig"]

# built by carelens.models.build_backbone
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "small_cnn")

IMBALANCE_STRATEGIES = ("none", "weighted", "focal", "balanced_sampler")
AUGMENT_PRESETS = ("none", "default", "dermoscopy", "xray", "ultrasound", "photo", "fundus", "flips")
# the presets that mirror images left-right and top-bottom and turn them by quarter turns in training: a model
# trained with one of them has seen those views, so averaging its answers over them at inference (export --flips,
# --quarter-turns) asks it nothing new
MIRRORING_PRESETS = ("default", "dermoscopy", "photo", "flips")
MONITORS = ("balanced_accuracy", "macro_auc", "macro_f1", "accuracy", "neg_log_loss")


@dataclass(frozen=True)
class TrainConfig:
    """Every item of the recipe. Defaults: frozen-feature head, then fine-tune the top 5 stages."""

    model: str = "efficientnet_lite0"
    pretrained: bool = True
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)  # size, resize mode, normalisation
    batch_size: int = 32
    # phase 1: backbone frozen, pooled features cached, head trained on them
    head_epochs: int = 40
    lr_head: float = 3e-3
    # phase 2: fine-tune the top `unfreeze_stages` stages (-1 = all) with augmentation
    finetune_epochs: int = 6
    unfreeze_stages: int = 5
    lr_finetune: float = 5e-4
    weight_decay: float = 1e-4
    dropout: float = 0.2
    label_smoothing: float = 0.0
    # phase 2 regularisers (0 = off): an exponential moving average of the weights (decay per step; the averaged
    # weights are validated and kept), and mixup (Zhang et al. 2018: pairs of images and their losses blended
    # with a Beta(mixup, mixup) weight)
    ema: float = 0.0
    mixup: float = 0.0
    # progressive resizing (0 = off): the fine-tune epochs before the last `final_size_epochs` train on images of
    # this smaller size, faster; the head phase, the last epochs, every validation and all that is shipped use the
    # image size (Touvron et al. 2019: the last epochs at the test size mend the train-test resolution discrepancy)
    early_image_size: int = 0
    final_size_epochs: int = 1
    imbalance: tuple[str, ...] = ("weighted",)
    class_weights: str = "inverse"  # or "effective" (Cui et al. 2019)
    effective_beta: float = 0.999
    focal_gamma: float = 2.0
    schedule: str = "cosine"  # or "plateau"
    monitor: str = "balanced_accuracy"
    # fine-tune epochs without a better validation score before training stops (0: never); under the one-cycle
    # schedule the epochs that start before the learning rate peaks do not count
    patience: int = 3
    augment: str = "default"
    severity_head: str = "softmax"  # multi-label only: "softmax" or "ordinal" (CORAL)
    severity_weight: float = 1.0  # multi-label only: weight of the severity loss beside the condition loss
    seed: int = 0
    threads: int | None = None
    # small_cnn only: the channels of its first stage (doubling at each of the next three); 16 trains about 3x
    # faster than the default 32 on a CPU, for small sets or quick checks
    width: int = 32

    def __post_init__(self) -> None:
        problems = []
        if self.model not in BACKBONES:
            problems.append(f"model {self.model!r} is unknown (choose {', '.join(BACKBONES)})")
        if self.model == "small_cnn" and self.pretrained:
            object.__setattr__(self, "pretrained", False)  # no pretrained weights exist for it
        for name in ("lr_head", "lr_finetune"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                problems.append(f"{name} must be a positive number, got {v}")
        for name in ("head_epochs", "finetune_epochs", "patience"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.head_epochs + self.finetune_epochs == 0:
            problems.append("head_epochs and finetune_epochs are both 0: nothing would be trained")
        if not self.pretrained and self.finetune_epochs == 0:
            problems.append("a backbone without pretrained weights needs finetune_epochs > 0")
        if self.batch_size < 2:
            problems.append(f"batch_size must be >= 2, got {self.batch_size}")
        bad = [s for s in self.imbalance if s not in IMBALANCE_STRATEGIES]
        if bad or not self.imbalance:
            problems.append(f"imbalance {bad or '()'} unknown; combine any of {', '.join(IMBALANCE_STRATEGIES)}")
        if "none" in self.imbalance and len(self.imbalance) > 1:
            problems.append("imbalance 'none' cannot be combined with other strategies")
        if self.class_weights not in ("inverse", "effective"):
            problems.append(f"class_weights must be inverse or effective, got {self.class_weights!r}")
        if self.schedule not in ("cosine", "plateau"):
            problems.append(f"schedule must be cosine or plateau, got {self.schedule!r}")
        if self.monitor not in MONITORS:
            problems.append(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        if self.augment not in AUGMENT_PRESETS:
            problems.append(f"augment must be one of {', '.join(AUGMENT_PRESETS)}, got {self.augment!r}")
        if not 0 <= self.ema < 1:
            problems.append(f"ema must be a decay in [0, 1) (0 = off, 0.99 typical), got {self.ema}")
        if not (math.isfinite(self.mixup) and self.mixup >= 0):
            problems.append(f"mixup must be a Beta concentration >= 0 (0 = off, 0.2-0.4 typical), got {self.mixup}")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            problems.append("dropout and label_smoothing must be in [0, 1)")
        if self.severity_head not in ("softmax", "ordinal"):
            problems.append(f"severity_head must be softmax or ordinal, got {self.severity_head!r}")
        if self.width != 32 and self.model != "small_cnn":
            problems.append(f"width applies to small_cnn only (model {self.model!r} has a fixed width)")
        if self.width < 4:
            problems.append(f"width must be >= 4 channels, got {self.width}")
        if self.early_image_size:
            problems += self._progressive_problems()
        if self.focal_gamma < 0:
            problems.append(f"focal_gamma must be >= 0, got {self.focal_gamma}")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def _progressive_problems(self) -> list[str]:
        early, size = self.early_image_size, self.image_size
        problems = []
        if not 8 <= early < size:
            problems.append(f"early_image_size must be in [8, image_size) (image size {size}), got {early}")
        if self.model.startswith("efficientnet") and (early % 32 or size % 32):
            # its static SAME padding is computed for the image size: the same at another size only when both are
            # multiples of the network's total stride
            problems.append(f"early_image_size and image_size must be multiples of 32 for {self.model} (got {early} "
                            f"and {size})")
        if not 1 <= self.final_size_epochs < self.finetune_epochs:
            problems.append(f"final_size_epochs must be in [1, finetune_epochs) so that some epochs run at the early "
                            f"size (finetune_epochs {self.finetune_epochs}), got {self.final_size_epochs}")
        return problems

    def epoch_image_size(self, epoch: int) -> int:
        """The image size fine-tune epoch ``epoch`` (0-based) trains at: the early size before the last
        ``final_size_epochs``, else the image size."""
        if self.early_image_size and epoch < self.finetune_epochs - self.final_size_epochs:
            return self.early_image_size
        return self.image_size

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["imbalance"] = list(self.imbalance)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @staticmethod
    def read_settings(path: str | Path) -> dict[str, Any]:
        """The settings of a JSON file (an object of TrainConfig fields), with a clear error when the file is
        missing, is not JSON or holds something else than an object."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training settings file {p} not found: give a JSON object of TrainConfig fields, "
                              'for example {"image_size": 160, "finetune_epochs": 8}')
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"training settings file {p} is not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"training settings file {p} holds a {type(d).__name__}, not a JSON object of "
                              "TrainConfig fields")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """From a JSON settings file or a run's config.json. ``image_size`` and ``resize`` may be given at the
        top level (the CLI's flags, and runs written before the recipe held its preprocessing)."""
        d = dict(d)
        shorthand: dict[str, Any] = {k: d.pop(k) for k in ("image_size", "resize") if k in d}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
        pre = d.get("preprocess") or {}
        if isinstance(pre, PreprocessConfig):
            pre = pre.to_dict()
        d["preprocess"] = {**pre, **shorthand} if isinstance(pre, dict) else pre
        try:  # every value checked against its field's type (a JSON file may hold "wide" for a number)
            return _typed().validate_python(d)
        except ValidationError as exc:
            raise ConfigError("invalid training config: " + "; ".join(_problem(e) for e in exc.errors())) from None


@functools.cache
def _typed() -> TypeAdapter[TrainConfig]:
    return TypeAdapter(TrainConfig)


def _problem(error: Any) -> str:
    """One of pydantic's errors in the words of a training config: a ConfigError raised by the checks above as its
    own text, a value of the wrong type as the setting, what was expected and what was given."""
    raised = error.get("ctx", {}).get("error")
    if isinstance(raised, ConfigError):
        return str(raised).removeprefix("invalid training config: ")
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg'][0].lower()}{error['msg'][1:]} (got {error['input']!r})"
