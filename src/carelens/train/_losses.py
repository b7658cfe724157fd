"""Losses and class weights for imbalanced data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FocalLoss", "build_loss", "class_weights"]


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
