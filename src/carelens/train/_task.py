"""What the trainer does differently per task, behind one interface: targets, loss, validation measures,
the score early stopping follows, and the batch order. One trainer; a task is a strategy, never a copy."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from carelens.config import TrainConfig
from carelens.data import Example
from carelens.labels import LabelSpec
from carelens.metrics import classification_metrics, multilabel_metrics, severity_metrics, softmax
from carelens.tasks import OutputLayout, encode_findings, sigmoid
from carelens.train._losses import MultilabelLoss, build_loss, positive_weights

__all__ = ["MulticlassTask", "MultilabelTask", "TrainTask", "task_for"]


class TrainTask(Protocol):
    @property
    def layout(self) -> OutputLayout | None: ...

    def target(self, e: Example) -> int | list[int]: ...
    def missing_in(self, examples: list[Example]) -> list[str]: ...
    def loss(self, y_train: np.ndarray) -> nn.Module: ...
    def metrics(self, y: np.ndarray, logits: np.ndarray) -> dict[str, Any]: ...
    def score(self, m: dict[str, Any], y: np.ndarray, logits: np.ndarray) -> float: ...
    def summary(self, m: dict[str, Any]) -> dict[str, float]: ...
    def order(self, y: np.ndarray, gen: torch.Generator) -> np.ndarray: ...


def _finite(v: float) -> float:
    return v if not math.isnan(v) else -1.0


class MulticlassTask:
    """One class per image: softmax cross-entropy (weighted / focal), a class-balanced sampler if asked."""

    def __init__(self, class_ids: list[str], config: TrainConfig) -> None:
        self.class_ids, self.config = class_ids, config
        self.index = {c: i for i, c in enumerate(class_ids)}

    @property
    def layout(self) -> OutputLayout | None:
        return None

    def target(self, e: Example) -> int:
        return self.index[e.label]

    def missing_in(self, examples: list[Example]) -> list[str]:
        seen = {e.label for e in examples}
        return [c for c in self.class_ids if c not in seen]

    def loss(self, y_train: np.ndarray) -> nn.Module:
        c = self.config
        counts = np.bincount(y_train, minlength=len(self.class_ids))
        return build_loss(c.imbalance, counts.tolist(), mode=c.class_weights, beta=c.effective_beta,
                          gamma=c.focal_gamma, label_smoothing=c.label_smoothing)

    def metrics(self, y: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
        return classification_metrics(y, softmax(logits, dtype=np.float32), self.class_ids)

    def score(self, m: dict[str, Any], y: np.ndarray, logits: np.ndarray) -> float:
        if self.config.monitor == "neg_log_loss":
            return -float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)))
        return _finite(float(m[self.config.monitor]))

    def summary(self, m: dict[str, Any]) -> dict[str, float]:
        return {"val_balanced_accuracy": m["balanced_accuracy"], "val_accuracy": m["accuracy"],
                "val_macro_auc": m["macro_auc"]}

    def order(self, y: np.ndarray, gen: torch.Generator) -> np.ndarray:
        if "balanced_sampler" not in self.config.imbalance:
            return torch.randperm(len(y), generator=gen).numpy()
        counts = np.bincount(y)
        w = torch.tensor(1.0 / counts[y], dtype=torch.double)
        return torch.multinomial(w, len(y), replacement=True, generator=gen).numpy()


class MultilabelTask:
    """Several conditions per image, each with a severity: BCE per condition (``pos_weight`` with
    ``weighted``, focal with ``focal``) + the severity loss on conditions present; early stopping on macro F1
    (at 0.5; the calibrate step chooses the deployed thresholds)."""

    def __init__(self, spec: LabelSpec, config: TrainConfig) -> None:
        self.spec, self.config = spec, config
        self._layout = OutputLayout.of(spec, config.severity_head)

    @property
    def layout(self) -> OutputLayout:
        return self._layout

    def target(self, e: Example) -> list[int]:
        return encode_findings(self.spec, dict(e.findings or {}))

    def missing_in(self, examples: list[Example]) -> list[str]:
        seen = {c for e in examples for c in (e.findings or {})}
        return [c for c in self.spec.class_ids if c not in seen]

    def loss(self, y_train: np.ndarray) -> nn.Module:
        presence, _ = self.layout.split_targets(y_train)
        strategies = self.config.imbalance
        pw = torch.tensor(positive_weights(presence), dtype=torch.float32) if "weighted" in strategies else None
        gamma = self.config.focal_gamma if "focal" in strategies else 0.0
        return MultilabelLoss(self.layout, pw, gamma, self.config.severity_weight)

    def metrics(self, y: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
        presence, levels = self.layout.split_targets(y)
        m = multilabel_metrics(presence, sigmoid(self.layout.condition_logits(logits)), self.spec.class_ids)
        m["severity"] = severity_metrics(levels, self.layout.severity_proba(logits), presence,
                                         [c.level_ids for c in self.spec.classes], self.spec.class_ids)
        return m

    def score(self, m: dict[str, Any], y: np.ndarray, logits: np.ndarray) -> float:
        monitor = self.config.monitor if self.config.monitor in ("macro_auc", "neg_log_loss") else "macro_f1"
        return _finite(float(m[monitor]))

    def summary(self, m: dict[str, Any]) -> dict[str, float]:
        return {"val_macro_f1": m["macro_f1"], "val_macro_auc": m["macro_auc"],
                "val_severity_qwk": m["severity"].get("qwk", float("nan"))}

    def order(self, y: np.ndarray, gen: torch.Generator) -> np.ndarray:
        return torch.randperm(len(y), generator=gen).numpy()  # a class-balanced sampler has no multi-label meaning


def task_for(spec: LabelSpec | None, class_ids: list[str], config: TrainConfig) -> TrainTask:
    if spec is not None and spec.multilabel:
        return MultilabelTask(spec, config)
    return MulticlassTask(class_ids, config)
