"""Losses and class weights for imbalanced data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from carelens.tasks import OutputLayout

__all__ = ["FocalLoss", "MultilabelLoss", "build_loss", "class_weights", "positive_weights"]


def class_weights(counts: Sequence[int], mode: str = "inverse", beta: float = 0.999) -> np.ndarray:
    """Per-class weights, normalised to mean 1.

    ``inverse``: 1 / n_c. ``effective``: (1 - beta) / (1 - beta ** n_c), the effective number of
    samples of Cui et al. (CVPR 2019), gentler on very large classes.
    """
    n = np.asarray(counts, dtype=np.float64)
    if (n <= 0).any():
        raise ValueError(f"every class needs at least one training example, got counts {list(counts)}")
    w = 1.0 / n if mode == "inverse" else (1.0 - beta) / (1.0 - np.power(beta, n))
    return np.asarray(w / w.mean())


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): CE scaled by (1 - p_t) ** gamma; gamma = 0 is cross entropy."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else None)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, reduction="none", label_smoothing=self.label_smoothing)
        pt = torch.exp(-F.cross_entropy(logits, target, reduction="none"))
        loss = (1.0 - pt) ** self.gamma * ce
        if self.weight is not None:
            w = cast(torch.Tensor, self.weight)[target]
            return (loss * w).sum() / w.sum()
        return loss.mean()


def build_loss(strategies: Sequence[str], counts: Sequence[int], *, mode: str = "inverse", beta: float = 0.999,
               gamma: float = 2.0, label_smoothing: float = 0.0) -> nn.Module:
    """The loss for a combination of imbalance strategies (the sampler is handled by the trainer).

    With ``balanced_sampler`` and ``weighted`` together the sampler already balances classes, so
    the weights are square-rooted to avoid correcting twice.
    """
    weight = None
    if "weighted" in strategies:
        w = class_weights(counts, mode, beta)
        if "balanced_sampler" in strategies:
            w = np.sqrt(w) / np.sqrt(w).mean()
        weight = torch.tensor(w, dtype=torch.float32)
    if "focal" in strategies:
        return FocalLoss(gamma, weight, label_smoothing)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


class MultilabelLoss(nn.Module):
    """Binary cross-entropy per condition (``pos_weight`` for rare ones; ``gamma`` > 0 makes it focal), plus
    the severity loss on the conditions present with a known grade (cross-entropy for a softmax head;
    for an ordinal head, binary cross-entropy on each cumulative step "level > j")."""

    def __init__(self, layout: OutputLayout, pos_weight: torch.Tensor | None = None, gamma: float = 0.0,
                 severity_weight: float = 1.0) -> None:
        super().__init__()
        self.layout = layout
        self.register_buffer("pos_weight", pos_weight)
        self.gamma = gamma
        self.severity_weight = severity_weight
        self.slices = layout.severity_slices()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = self.layout.n_conditions
        presence = target[:, :k].float()
        cond = logits[:, :k]
        pw = cast(torch.Tensor | None, self.pos_weight)
        bce = F.binary_cross_entropy_with_logits(cond, presence, pos_weight=pw, reduction="none")
        if self.gamma > 0:
            p = torch.sigmoid(cond)
            pt = p * presence + (1 - p) * (1 - presence)
            bce = bce * (1 - pt) ** self.gamma
        loss = bce.mean()
        total, count = logits.new_zeros(()), 0
        for j, sl in enumerate(self.slices):
            if sl is None:
                continue
            level = target[:, k + j]
            rows = level >= 0
            if not bool(rows.any()):
                continue
            z = logits[rows, sl]
            if self.layout.head == "softmax":
                total = total + F.cross_entropy(z, level[rows], reduction="sum")
            else:
                steps = torch.arange(z.shape[1], device=z.device)
                above = (level[rows][:, None] > steps[None, :]).float()
                total = total + F.binary_cross_entropy_with_logits(z, above, reduction="none").sum(1).sum()
            count += int(rows.sum())
        if count:
            loss = loss + self.severity_weight * total / count
        return loss


def positive_weights(presence: np.ndarray, cap: float = 20.0) -> np.ndarray:
    """BCE ``pos_weight`` per condition: negatives / positives in training, capped (a rare condition must not
    dominate the loss), 1 where a condition is common."""
    y = np.asarray(presence, dtype=np.float64)
    pos = y.sum(0)
    neg = len(y) - pos
    return np.asarray(np.clip(neg / np.maximum(pos, 1.0), 1.0, cap))
